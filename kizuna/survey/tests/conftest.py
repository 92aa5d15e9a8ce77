"""Survey core fixtures (the personas, `account` and `portal` are in kizuna/testing/)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from django.utils import translation

if TYPE_CHECKING:
    from kizuna.identity.models import User
    from kizuna.survey.models import Portal, Survey


@pytest.fixture
def survey(portal: Portal, ada: User) -> Survey:
    from kizuna.survey.models import Survey

    return Survey.objects.create(
        portal=portal, title="Customer satisfaction", language="en", created_by=ada
    )


@pytest.fixture(autouse=True)
def _no_language_left_active() -> Iterator[None]:
    """A public page activates its survey's language in the test's thread; the next test of
    that worker (of any app) starts in the default language again."""
    yield
    translation.deactivate()
