from kizuna.testing.survey_keys import *  # noqa: F403
