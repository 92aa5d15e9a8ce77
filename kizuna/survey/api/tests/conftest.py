from kizuna.survey.keys.tests.fixtures import *  # noqa: F403
