"""Test configuration shared by every app's tests."""

import os

# Playwright's sync API runs an event loop in the test thread; Django's ORM must
# still be usable from those tests.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytest_plugins = ["kizuna.testing.personas", "kizuna.testing.browser"]
