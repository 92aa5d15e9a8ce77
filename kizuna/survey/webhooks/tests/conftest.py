from kizuna.lib.tests.receiver import receiver  # noqa: F401
from kizuna.survey.keys.tests.fixtures import *  # noqa: F403
