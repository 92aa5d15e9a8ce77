"""Test configuration shared by every app's tests."""

import os
from collections.abc import Iterator

import pytest

# Playwright's sync API runs an event loop in the test thread; Django's ORM must
# still be usable from those tests.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytest_plugins = [
    "kizuna.testing.personas",
    "kizuna.testing.crm",
    "kizuna.testing.crm_api",
    "kizuna.testing.survey",
    "kizuna.testing.receiver",
    "kizuna.testing.browser",
    "kizuna.testing.smtp",
]


@pytest.fixture(autouse=True)
def _empty_shared_cache(request: pytest.FixtureRequest) -> Iterator[None]:
    """Rate limits and throttles live in the database cache table, which Django's
    flush after a transactional test does not empty: without this, counters a
    concurrency test left behind would throttle the tests that follow it."""
    yield
    marker = request.node.get_closest_marker("django_db")
    transactional = (marker is not None and marker.kwargs.get("transaction")) or (
        {"transactional_db", "live_server"} & set(request.fixturenames)
    )
    if transactional:
        from django.core.cache import cache

        with request.getfixturevalue("django_db_blocker").unblock():
            cache.clear()


@pytest.fixture(autouse=True)
def _no_language_left_active() -> Iterator[None]:
    """A request activates its language in the test's thread (the public survey pages, a
    signed-in user's choice) and nothing gives it back: the next test of that worker, of any
    app, starts in the default language again."""
    yield
    from django.utils import translation

    translation.deactivate()


@pytest.fixture(autouse=True)
def _claims_look_for_left_rows_afresh() -> Iterator[None]:
    """A lane's claim whose pending rows fill its limit looks for rows left by a dead worker
    once a second (kizuna/work/leases.py), remembered per thread: a test's claims must not
    skip them because the previous test's claim, in the same thread, looked a moment ago."""
    from kizuna.work import leases

    leases.look_for_left_rows_at_next_claims()
    yield
    leases.look_for_left_rows_at_next_claims()
