"""The deployment-internal "my own account" route (DESIGN.md §2, S7): trust token only."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings
from django.test import Client, override_settings

from kizuna.identity.models import User
from kizuna.survey.keys.models import ServiceKey
from kizuna.survey.models import AccountMember, Portal, SurveyAccount
from kizuna.testing.survey_keys import sc_headers

pytestmark = pytest.mark.django_db

PATH = "/survey/api/v1/internal/accounts-for-email"


def post(client: Client, body: dict[str, Any], **headers: Any):
    return client.post(PATH, data=json.dumps(body), content_type="application/json", **headers)


def trusted() -> dict[str, Any]:
    return {"HTTP_X_KIZUNA_TRUST": settings.KIZUNA_TRUST_TOKEN}


def test_existing_administrator_gets_each_of_their_accounts_with_a_key(
    client: Client, ada_member, portal
):
    response = post(client, {"email": "ADA@example.com"}, **trusted())

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    key = ServiceKey.objects.get(member=ada_member, revoked_at__isnull=True)
    assert body == {
        "email": "ada@example.com",
        "created": False,
        "accounts": [
            {
                "id": ada_member.account_id,
                "name": "Kizuna Demo",
                "portals": [{"id": portal.pk, "name": "Customers"}],
                "sc_key": key.reveal(),
            }
        ],
    }
    assert SurveyAccount.objects.count() == 1


def test_the_returned_key_works_with_the_sc_key_api(client: Client, ada_member):
    body = post(client, {"email": "ada@example.com"}, **trusted()).json()
    response = client.get(
        "/survey/api/v1/account",
        HTTP_X_SC_EMAIL="ada@example.com",
        HTTP_X_SC_KEY=body["accounts"][0]["sc_key"],
    )
    assert response.status_code == 200


def test_existing_key_is_returned_not_replaced(client: Client, ada_member):
    existing = sc_headers(ada_member)["HTTP_X_SC_KEY"]
    body = post(client, {"email": "ada@example.com"}, **trusted()).json()
    assert body["accounts"][0]["sc_key"] == existing
    assert ServiceKey.objects.filter(member=ada_member).count() == 1


def test_user_without_an_account_gets_a_new_account_with_a_first_portal(client: Client, bob: User):
    response = post(
        client, {"email": "bob@example.com", "account_name": "Bob's surveys"}, **trusted()
    )

    assert response.status_code == 200
    body = response.json()
    assert body["created"] is True
    [account] = body["accounts"]
    assert account["name"] == "Bob's surveys"
    assert len(account["portals"]) == 1
    member = AccountMember.objects.get(user=bob)
    assert member.is_administrator
    assert Portal.objects.filter(account_id=account["id"]).count() == 1
    assert account["sc_key"] == ServiceKey.objects.get(member=member).reveal()


def test_plain_member_elsewhere_gets_an_account_of_their_own(client: Client, bob_member):
    body = post(client, {"email": "bob@example.com"}, **trusted()).json()

    assert body["created"] is True
    assert body["accounts"][0]["id"] != bob_member.account_id
    assert not ServiceKey.objects.filter(member=bob_member).exists()


def test_unknown_email_becomes_a_user_without_password_and_an_account(client: Client, db):
    body = post(client, {"email": "new@example.com", "name": "New Person"}, **trusted()).json()

    user = User.objects.get(email="new@example.com")
    assert user.full_name == "New Person"
    assert not user.has_usable_password()
    assert body["created"] is True
    assert body["accounts"][0]["name"] == "New Person"


def test_invalid_email_is_a_field_error(client: Client, db):
    response = post(client, {"email": "not-an-email"}, **trusted())
    assert response.status_code == 422
    assert list(response.json()["error"]["fields"]) == ["email"]
    assert SurveyAccount.objects.count() == 0


def test_never_reachable_without_the_trust_token(client: Client, ada_member):
    response = post(client, {"email": "ada@example.com"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_trust_token"
    assert ServiceKey.objects.count() == 0


def test_never_reachable_with_an_sc_key_alone(client: Client, ada_member):
    headers = sc_headers(ada_member)
    before = ServiceKey.objects.count()

    response = post(client, {"email": "carol@example.com"}, **headers)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_trust_token"
    assert ServiceKey.objects.count() == before
    assert SurveyAccount.objects.count() == 1


def test_wrong_trust_token_is_refused(client: Client, ada_member):
    response = post(client, {"email": "ada@example.com"}, HTTP_X_KIZUNA_TRUST="guess")
    assert response.status_code == 401
    assert ServiceKey.objects.count() == 0


@override_settings(KIZUNA_TRUST_TOKEN="")
def test_an_empty_trust_token_setting_disables_the_route(client: Client, ada_member):
    response = post(client, {"email": "ada@example.com"}, HTTP_X_KIZUNA_TRUST="")
    assert response.status_code == 401
    assert ServiceKey.objects.count() == 0


def test_trust_token_does_not_open_the_sc_key_routes(client: Client, ada_member):
    response = client.get("/survey/api/v1/account", **trusted())
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_credentials"


# --- throttling wrong trust tokens (per client address; the right token always passes) ------


ATTACKER = "203.0.113.66"


def wrong_tokens(client: Client, count: int, address: str = ATTACKER) -> list[int]:
    return [
        post(
            client, {"email": "ada@example.com"}, HTTP_X_KIZUNA_TRUST="guess", REMOTE_ADDR=address
        ).status_code
        for _ in range(count)
    ]


@override_settings(KIZUNA_TRUST_TOKEN_MAX_FAILURES=3, KIZUNA_TRUST_TOKEN_WINDOW_SECONDS=600)
def test_wrong_trust_tokens_past_the_limit_get_429_saying_what_was_limited(
    client: Client, ada_member
):
    statuses = wrong_tokens(client, 3)
    response = post(
        client, {"email": "ada@example.com"}, HTTP_X_KIZUNA_TRUST="guess", REMOTE_ADDR=ATTACKER
    )

    assert statuses == [401, 401, 401]
    assert response.status_code == 429
    assert response.json() == {
        "error": {
            "code": "throttled",
            "message": "Too many wrong trust tokens came from your address: wrong ones are "
            "refused for 10 more minutes. The right token is still accepted.",
            "fields": {},
        }
    }
    assert 599 <= int(response["Retry-After"]) <= 600
    assert SurveyAccount.objects.count() == 1


@override_settings(KIZUNA_TRUST_TOKEN_MAX_FAILURES=3)
def test_the_right_trust_token_is_never_refused_for_others_failures_at_its_address(
    client: Client, ada_member
):
    wrong_tokens(client, 10)

    same_address = post(client, {"email": "ada@example.com"}, REMOTE_ADDR=ATTACKER, **trusted())
    other_address = post(client, {"email": "ada@example.com"}, REMOTE_ADDR="192.0.2.8", **trusted())

    assert (same_address.status_code, other_address.status_code) == (200, 200)


@override_settings(KIZUNA_TRUST_TOKEN_MAX_FAILURES=3)
def test_wrong_trust_tokens_are_counted_per_client_address(client: Client, ada_member):
    wrong_tokens(client, 5)

    assert wrong_tokens(client, 1, address="192.0.2.8") == [401]


@override_settings(KIZUNA_TRUST_TOKEN_MAX_FAILURES=1)
def test_the_trust_token_429_is_in_the_callers_language(client: Client, ada_member):
    wrong_tokens(client, 1)

    response = post(
        client,
        {"email": "ada@example.com"},
        HTTP_X_KIZUNA_TRUST="guess",
        HTTP_ACCEPT_LANGUAGE="ja",
        REMOTE_ADDR=ATTACKER,
    )

    assert response.status_code == 429
    assert response.json()["error"]["message"] == (
        "このアドレスから誤った信頼トークンが多く送られました。あと 15 分間、誤ったトークンは"
        "拒否されます。正しいトークンは引き続き受け付けます。"
    )
