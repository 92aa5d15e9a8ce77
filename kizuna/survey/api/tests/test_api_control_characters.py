"""Issue 9.8 on the Survey side: names that go into mail headers refuse line breaks and
other control characters (invitation recipients, the "my own account" route, new accounts)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from kizuna.identity.models import User
from kizuna.survey.models import AccountMember, Invitation, Survey, SurveyAccount

pytestmark = pytest.mark.django_db

REFUSED = "Line breaks and other control characters are not allowed here (found {})."


def post(client: Client, path: str, body: dict[str, Any], **headers: Any) -> Any:
    return client.post(
        f"/survey/api/v1{path}", json.dumps(body), content_type="application/json", **headers
    )


def test_an_invitation_whose_name_holds_a_line_break_is_a_422_and_none_is_created(
    client: Client, survey: Survey, ada_sc_headers: dict[str, Any]
) -> None:
    response = post(
        client,
        f"/surveys/{survey.pk}/invitations",
        {
            "invitations": [
                {"recipient_reference": "lead:1", "name": "Erin"},
                {"recipient_reference": "lead:2", "name": "Eve\r\nBcc: victim@example.com"},
                {"recipient_reference": "lead:3", "name": "Mallory\u2028"},
            ]
        },
        **ada_sc_headers,
    )

    assert response.status_code == 422
    assert response.json()["error"]["fields"] == {
        "invitations.1.name": [REFUSED.format("U+000D")],
        "invitations.2.name": [REFUSED.format("U+2028")],
    }
    assert Invitation.objects.count() == 0


def test_my_own_account_route_refuses_control_characters_in_the_names(client: Client) -> None:
    response = post(
        client,
        "/internal/accounts-for-email",
        {"email": "dan@example.com", "name": "Dan\nBcc: x@example.com", "account_name": "R\x7f"},
        HTTP_X_KIZUNA_TRUST=settings.KIZUNA_TRUST_TOKEN,
    )

    assert response.status_code == 422
    assert response.json()["error"]["fields"] == {
        "name": [REFUSED.format("U+000A")],
        "account_name": [REFUSED.format("U+007F")],
    }
    assert not User.objects.filter(email="dan@example.com").exists()
    assert SurveyAccount.objects.count() == 0


def test_a_new_survey_account_named_with_a_line_break_is_refused(
    charlie_client: Client, account: SurveyAccount
) -> None:
    response = charlie_client.post(
        reverse("survey:account-new"), {"name": "Bait\r\nBcc: x@example.com"}
    )

    assert response.status_code == 400
    assert response.context["form"].errors == {"name": [REFUSED.format("U+000D")]}
    assert list(SurveyAccount.objects.values_list("name", flat=True)) == ["Kizuna Demo"]
    assert not AccountMember.objects.filter(user__email="charlie@example.com").exists()
