from kizuna.lib.tests.receiver import receiver  # noqa: F401
