"""SC key authentication of the REST API: one error code per way of failing (S4, K2)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from kizuna.survey.keys import services
from kizuna.survey.keys.models import ServiceKey
from kizuna.survey.keys.tests.fixtures import sc_headers
from kizuna.survey.models import MemberRole

pytestmark = pytest.mark.django_db

ACCOUNT = "/survey/api/v1/account"


def error_of(response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_account_route_answers_the_keys_account_and_email(client: Client, ada, ada_api):
    response = client.get(ACCOUNT, **ada_api)

    assert response.status_code == 200
    assert response.json() == {
        "id": ada.account_id,
        "name": "Kizuna Demo",
        "email": "ada@example.com",
    }


def test_call_without_headers_is_401_missing_credentials(client: Client, ada):
    response = client.get(ACCOUNT)

    assert error_of(response) == (401, "missing_credentials")
    assert response.json()["error"]["message"] == "Send the headers X-SC-Email and X-SC-Key."


def test_signed_in_browser_session_is_not_an_api_credential(ada_client: Client, ada):
    assert error_of(ada_client.get(ACCOUNT)) == (401, "missing_credentials")


def test_unknown_email_has_its_own_code(client: Client, ada, ada_api):
    response = client.get(
        ACCOUNT, HTTP_X_SC_EMAIL="nobody@example.com", HTTP_X_SC_KEY=ada_api["HTTP_X_SC_KEY"]
    )
    assert error_of(response) == (401, "unknown_email")


def test_wrong_key_has_its_own_code(client: Client, ada, ada_api):
    response = client.get(
        ACCOUNT, HTTP_X_SC_EMAIL="ada@example.com", HTTP_X_SC_KEY="sck_not-the-key"
    )
    assert error_of(response) == (401, "wrong_key")


def test_key_of_another_account_with_this_email_is_a_wrong_key(
    client: Client, ada, ada_api, carol_api
):
    response = client.get(
        ACCOUNT, HTTP_X_SC_EMAIL="ada@example.com", HTTP_X_SC_KEY=carol_api["HTTP_X_SC_KEY"]
    )
    assert error_of(response) == (401, "wrong_key")


def test_k2_old_key_is_refused_as_revoked_right_after_regeneration(client: Client, ada, ada_api):
    assert client.get(ACCOUNT, **ada_api).status_code == 200

    new = services.regenerate_key(member=ada, by=ada.user)

    response = client.get(ACCOUNT, **ada_api)
    assert error_of(response) == (401, "revoked_key")
    assert "Reconnect" in response.json()["error"]["message"]
    assert (
        client.get(
            ACCOUNT, HTTP_X_SC_EMAIL="ada@example.com", HTTP_X_SC_KEY=new.reveal()
        ).status_code
        == 200
    )


def test_k2_regenerating_twice_keeps_one_active_key(ada):
    services.get_or_create_key(member=ada)
    services.regenerate_key(member=ada, by=ada.user)
    services.regenerate_key(member=ada, by=ada.user)

    assert ServiceKey.objects.filter(member=ada).count() == 3
    assert ServiceKey.objects.filter(member=ada, revoked_at__isnull=True).count() == 1


def test_key_of_a_member_who_is_no_longer_administrator_is_insufficient_role(
    client: Client, ada, ada_api
):
    ada.role = MemberRole.MEMBER
    ada.save(update_fields=["role"])

    assert error_of(client.get(ACCOUNT, **ada_api)) == (403, "insufficient_role")


def test_standard_members_get_no_key(bob):
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        services.get_or_create_key(member=bob)
    assert ServiceKey.objects.count() == 0


def test_errors_are_in_the_callers_language(client: Client, ada):
    response = client.get(ACCOUNT, HTTP_ACCEPT_LANGUAGE="ja")

    assert error_of(response) == (401, "missing_credentials")
    assert (
        response.json()["error"]["message"] == "X-SC-Email と X-SC-Key ヘッダーを送信してください。"
    )


@override_settings(KIZUNA_SC_KEY_MAX_FAILURES=3)
def test_failed_key_authentications_are_throttled_per_address_and_email(
    client: Client, ada, ada_api
):
    wrong: dict[str, Any] = {"HTTP_X_SC_EMAIL": "ada@example.com", "HTTP_X_SC_KEY": "sck_guess"}
    codes = [error_of(client.get(ACCOUNT, **wrong)) for _ in range(3)]
    assert codes == [(401, "wrong_key")] * 3

    throttled = client.get(ACCOUNT, **ada_api)
    assert error_of(throttled) == (429, "throttled")
    assert throttled["Retry-After"] == "900"
    # Another address is not locked out by this one's guesses.
    assert client.get(ACCOUNT, REMOTE_ADDR="192.0.2.7", **ada_api).status_code == 200


@override_settings(KIZUNA_SC_KEY_MAX_FAILURES=2)
def test_one_address_guessing_across_many_emails_is_throttled_too(client: Client, ada, ada_api):
    for n in range(10):  # five times the per-email limit
        wrong: dict[str, Any] = {
            "HTTP_X_SC_EMAIL": f"guess{n}@example.com",
            "HTTP_X_SC_KEY": "sck_guess",
        }
        assert error_of(client.get(ACCOUNT, **wrong)) == (401, "unknown_email")

    assert error_of(client.get(ACCOUNT, **ada_api)) == (429, "throttled")
    assert client.get(ACCOUNT, REMOTE_ADDR="192.0.2.8", **ada_api).status_code == 200


@override_settings(KIZUNA_SC_KEY_MAX_FAILURES=2)
def test_successful_calls_do_not_count_towards_the_throttle(client: Client, ada, ada_api):
    for _ in range(5):
        assert client.get(ACCOUNT, **ada_api).status_code == 200


def test_successful_call_records_when_the_key_was_last_used(client: Client, ada, ada_api):
    before = timezone.now()
    client.get(ACCOUNT, **ada_api)

    key = ServiceKey.objects.get(member=ada)
    assert key.last_used_at is not None
    assert key.last_used_at >= before


def test_openapi_document_is_public_and_lists_the_routes(client: Client):
    response = client.get("/survey/api/v1/openapi.json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {
        "/survey/api/v1/account",
        "/survey/api/v1/portals",
        "/survey/api/v1/surveys",
        "/survey/api/v1/members",
        "/survey/api/v1/surveys/{survey_id}/invitations",
        "/survey/api/v1/invitations",
        "/survey/api/v1/responses",
        "/survey/api/v1/webhooks",
        "/survey/api/v1/webhooks/{endpoint_id}",
        "/survey/api/v1/internal/accounts-for-email",
    } <= set(paths)
    account_responses = paths["/survey/api/v1/account"]["get"]["responses"]
    assert {"200", "401", "403", "429"} <= set(account_responses)


def test_api_docs_page_is_served_without_a_cdn(client: Client):
    response = client.get("/survey/api/v1/docs")

    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower()


def test_sc_headers_helper_uses_the_members_active_key(ada):
    headers = sc_headers(ada)
    assert headers["HTTP_X_SC_KEY"] == ServiceKey.objects.get(member=ada).reveal()
