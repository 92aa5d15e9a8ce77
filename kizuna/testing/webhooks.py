"""Webhook endpoints and events in tests (import it; not a plugin)."""

from __future__ import annotations

from kizuna.survey.models import SurveyAccount
from kizuna.survey.webhooks import services
from kizuna.survey.webhooks.models import Delivery, WebhookEndpoint


def endpoint(account: SurveyAccount, url: str) -> WebhookEndpoint:
    """An endpoint of `account` at `url` for response.completed, made as an administrator would."""
    made, _secret = services.create_endpoint(
        account=account, url=url, events=["response.completed"], by=None
    )
    return made


def publish(account: SurveyAccount, count: int) -> list[Delivery]:
    """`count` response.completed events of `account`: their deliveries, one an endpoint each."""
    return [
        delivery
        for number in range(count)
        for delivery in services.publish_event(
            account=account, event_type="response.completed", payload={"n": number}
        )
    ]
