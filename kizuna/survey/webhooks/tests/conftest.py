from __future__ import annotations

import pytest

from kizuna import contracts
from kizuna.survey.models import SurveyAccount
from kizuna.survey.webhooks import services
from kizuna.survey.webhooks.models import WebhookEndpoint
from kizuna.testing.survey_keys import *  # noqa: F403


@pytest.fixture
def subscribed(account: SurveyAccount) -> WebhookEndpoint:
    """An endpoint of Ada's account that takes every event type."""
    endpoint, _ = services.create_endpoint(
        account=account,
        url="https://93.184.215.14/hook",
        events=list(contracts.EVENT_TYPES),
        by=None,
    )
    return endpoint
