"""Bad input to the Survey API: always a JSON error naming the field, in the caller's language,
and nothing written. Over-long values once reached the database (a 500 on PostgreSQL)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from kizuna.identity.models import User
from kizuna.survey.models import AccountMember, Invitation, Survey, SurveyAccount
from kizuna.survey.webhooks.models import WebhookEndpoint
from kizuna.testing.survey_keys import sc_headers

pytestmark = pytest.mark.django_db

API = "/survey/api/v1"
# 254 characters is the most an email column holds; this address is valid but longer.
LONG_EMAIL = ".".join(["a" * 60, "b" * 60, "c" * 60]) + "@" + "d" * 60 + ".example.com"


def rows() -> tuple[int, ...]:
    """Everything a POST to the API could have written."""
    return (
        User.objects.count(),
        AccountMember.objects.count(),
        SurveyAccount.objects.count(),
        Invitation.objects.count(),
        WebhookEndpoint.objects.count(),
    )


@pytest.fixture
def routes(ada_member: AccountMember, survey: Survey) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each POST route with the headers that let a call through to its body."""
    trusted = {"HTTP_X_KIZUNA_TRUST": settings.KIZUNA_TRUST_TOKEN}
    return {
        "members": ("/members", sc_headers(ada_member)),
        "invitations": (f"/surveys/{survey.pk}/invitations", sc_headers(ada_member)),
        "webhooks": ("/webhooks", sc_headers(ada_member)),
        "accounts-for-email": ("/internal/accounts-for-email", trusted),
    }


ROUTE_NAMES = ["members", "invitations", "webhooks", "accounts-for-email"]


@pytest.mark.parametrize("route", ROUTE_NAMES)
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", "application/json"),
        (b'{"emails": ["\xff@example.com"]}', "application/json"),  # not UTF-8
        (b"emails=dan@example.com", "application/x-www-form-urlencoded"),
    ],
    ids=["broken JSON", "not UTF-8", "a form"],
)
def test_a_body_that_is_not_json_is_a_json_error(
    client: Client, routes: dict, route: str, body: bytes, content_type: str
) -> None:
    path, headers = routes[route]
    before = rows()

    response = client.post(API + path, body, content_type=content_type, **headers)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response.json() == {
        "error": {
            "code": "invalid_json",
            "message": "The request body is not valid JSON: send a JSON object encoded in UTF-8.",
            "fields": {},
        }
    }
    assert rows() == before


@pytest.mark.parametrize("route", ROUTE_NAMES)
def test_a_body_too_large_to_read_is_a_json_error(client: Client, routes: dict, route: str) -> None:
    path, headers = routes[route]
    before = rows()
    body = json.dumps({"emails": ["x" * 3_000_000]})

    response = client.post(API + path, body, content_type="application/json", **headers)

    assert response.status_code == 413
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response.json() == {
        "error": {
            "code": "too_large",
            "message": "The request body is larger than 2.5\xa0MB: send less at once.",
            "fields": {},
        }
    }
    assert rows() == before


@pytest.mark.parametrize(
    ("route", "body", "fields"),
    [
        ("members", {"emails": [LONG_EMAIL]}, {"emails.0": ["Use at most 254 characters."]}),
        (
            "invitations",
            {"invitations": [{"recipient_reference": "lead:9", "email": LONG_EMAIL}]},
            {"invitations.0.email": ["Use at most 254 characters."]},
        ),
        (
            "invitations",
            {"invitations": [{"recipient_reference": "r" * 201}]},
            {"invitations.0.recipient_reference": ["Use at most 200 characters."]},
        ),
        (
            "webhooks",
            {"url": "https://93.184.215.14/" + "a" * 1000, "events": ["response.completed"]},
            {"url": ["Use at most 1000 characters."]},
        ),
        (
            "webhooks",
            {
                "url": "https://93.184.215.14/hook",
                "events": ["response.completed"],
                "description": "d" * 201,
            },
            {"description": ["Use at most 200 characters."]},
        ),
        ("accounts-for-email", {"email": LONG_EMAIL}, {"email": ["Use at most 254 characters."]}),
        (
            "accounts-for-email",
            {"email": "dan@example.com", "account_name": "a" * 201},
            {"account_name": ["Use at most 200 characters."]},
        ),
        (
            "webhooks",
            {},
            {"url": ["This field is required."], "events": ["This field is required."]},
        ),
    ],
    ids=[
        "member email",
        "invitation email",
        "recipient reference",
        "webhook url",
        "webhook description",
        "trusted email",
        "account name",
        "missing fields",
    ],
)
def test_a_value_too_long_for_its_column_is_a_field_error_and_nothing_is_written(
    client: Client, routes: dict, route: str, body: dict, fields: dict
) -> None:
    path, headers = routes[route]
    before = rows()

    response = client.post(API + path, json.dumps(body), content_type="application/json", **headers)

    assert response.status_code == 422
    assert response.json() == {
        "error": {"code": "invalid", "message": "Some values are not valid.", "fields": fields}
    }
    assert rows() == before


def test_field_errors_are_in_the_callers_language(client: Client, routes: dict) -> None:
    path, headers = routes["webhooks"]

    response = client.post(
        API + path, "{}", content_type="application/json", HTTP_ACCEPT_LANGUAGE="ja", **headers
    )

    assert response.json()["error"]["fields"] == {
        "url": ["このフィールドは必須です。"],
        "events": ["このフィールドは必須です。"],
    }


def test_a_query_value_of_the_wrong_type_is_a_field_error(client: Client, ada_member) -> None:
    response = client.get(API + "/responses?limit=many", **sc_headers(ada_member))

    assert response.status_code == 422
    assert response.json()["error"]["fields"] == {"limit": ["Send a whole number."]}
