"""Survey core fixtures (the personas, `account` and `portal` are in kizuna/testing/)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from kizuna.identity.models import User
    from kizuna.survey.models import Portal, Survey


@pytest.fixture
def survey(portal: Portal, ada: User) -> Survey:
    from kizuna.survey.models import Survey

    return Survey.objects.create(
        portal=portal, title="Customer satisfaction", language="en", created_by=ada
    )
