"""What an account's audit log says about its webhook endpoints (issue 14): who registered
an endpoint again and with which events, and why Kizuna disabled one. Two endpoints of two
accounts are registered, so that an entry naming the wrong endpoint shows.
"""

from __future__ import annotations

import pytest

from kizuna.identity.models import User
from kizuna.survey.audit.models import AuditAction, AuditEntry
from kizuna.survey.models import SurveyAccount
from kizuna.survey.webhooks import services
from kizuna.survey.webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.django_db

URL = "https://93.184.215.14/crm"


def entries(action: AuditAction) -> list[tuple[int, object, str, int | None, str, dict]]:
    return [
        (e.account_id, e.actor, e.target_type, e.target_id, e.target_repr, e.data)
        for e in AuditEntry.objects.filter(action=action).order_by("pk")
    ]


def test_the_first_registration_keeps_the_description_given(account: SurveyAccount, ada: User):
    endpoint, _secret, created = services.register_endpoint(
        account=account, url=URL, events=["response.completed"], by=ada, description=" CRM "
    )

    assert created
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).description == "CRM"


def test_registering_again_is_in_the_audit_log_with_who_which_endpoint_and_its_events(
    account: SurveyAccount, carol_account: SurveyAccount, ada: User, carol: User
):
    endpoint, _secret, _created = services.register_endpoint(
        account=account, url=URL, events=["response.completed"], by=ada
    )
    services.register_endpoint(
        account=carol_account, url=URL, events=["response.completed"], by=carol
    )

    again, _secret, created = services.register_endpoint(
        account=account, url=URL, events=["response.deleted", "response.completed"], by=ada
    )

    assert (again.pk, created) == (endpoint.pk, False)
    assert entries(AuditAction.WEBHOOK_ENDPOINT_REGISTERED) == [
        (
            account.pk,
            ada,
            "survey_webhooks.webhookendpoint",
            endpoint.pk,
            str(again),
            {"events": ["response.completed", "response.deleted"]},
        )
    ]


def test_a_disabled_endpoint_is_in_the_audit_log_with_kizuna_as_actor_and_the_reason(
    account: SurveyAccount, carol_account: SurveyAccount
):
    endpoint, _secret = services.create_endpoint(
        account=account, url=URL, events=["response.completed"], by=None
    )
    services.create_endpoint(account=carol_account, url=URL, events=["response.completed"], by=None)

    services.disable_endpoint(endpoint=endpoint, reason="The endpoint answered 410 Gone.")

    assert entries(AuditAction.WEBHOOK_ENDPOINT_DISABLED) == [
        (
            account.pk,
            None,
            "survey_webhooks.webhookendpoint",
            endpoint.pk,
            str(endpoint),
            {"reason": "The endpoint answered 410 Gone."},
        )
    ]
