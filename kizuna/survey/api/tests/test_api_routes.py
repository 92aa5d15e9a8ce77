"""Every REST API route as the account administrator's key, and refused for every other caller."""

from __future__ import annotations

import datetime
import json
import re
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from kizuna.lib import cursors
from kizuna.survey.keys import services
from kizuna.survey.models import (
    AccountMember,
    Invitation,
    MemberInvitation,
    MemberRole,
    Portal,
    Survey,
)
from kizuna.survey.services import invite_members
from kizuna.survey.webhooks.models import WebhookEndpoint
from kizuna.testing.personas import make_user
from kizuna.testing.survey_keys import make_response

pytestmark = pytest.mark.django_db

API = "/survey/api/v1"


def call(client: Client, method: str, path: str, headers: dict[str, Any], body: Any = None):
    if method == "get":
        return client.get(API + path, **headers)
    return getattr(client, method)(
        API + path,
        data=json.dumps(body) if body is not None else None,
        content_type="application/json",
        **headers,
    )


@pytest.fixture
def world(account, ada_member, bob_member, carol_member, portal, survey) -> dict[str, Any]:
    """Ada's account with a survey, an invitation, a response and a webhook endpoint."""
    response = make_response(survey, reference="lead:1")
    endpoint = WebhookEndpoint.objects.create(
        account=account, url="https://crm.example.com/hook", events=["response.completed"]
    )
    return {"survey": survey, "portal": portal, "response": response, "endpoint": endpoint}


ROUTES: list[tuple[str, Callable[[dict[str, Any]], str], Any]] = [
    ("get", lambda w: "/account", None),
    ("get", lambda w: "/portals", None),
    ("get", lambda w: "/surveys", None),
    ("get", lambda w: f"/surveys?portal={w['portal'].pk}", None),
    ("get", lambda w: "/members", None),
    ("post", lambda w: "/members", {"emails": ["dan@example.com"]}),
    (
        "post",
        lambda w: f"/surveys/{w['survey'].pk}/invitations",
        {"invitations": [{"recipient_reference": "lead:2"}]},
    ),
    ("get", lambda w: f"/invitations?survey={w['survey'].pk}", None),
    ("get", lambda w: f"/responses?survey={w['survey'].pk}", None),
    ("get", lambda w: "/webhooks", None),
    (
        "post",
        lambda w: "/webhooks",
        {"url": "https://93.184.215.14/hook", "events": ["response.completed"]},
    ),
    ("delete", lambda w: f"/webhooks/{w['endpoint'].pk}", None),
]
ROUTE_IDS = [
    "account",
    "portals",
    "surveys",
    "surveys of a portal",
    "members",
    "invite members",
    "create invitations",
    "list invitations",
    "list responses",
    "list webhooks",
    "create webhook",
    "delete webhook",
]


def snapshot() -> tuple[int, int, int, int]:
    return (
        AccountMember.objects.count(),
        MemberInvitation.objects.count(),
        Invitation.objects.count(),
        WebhookEndpoint.objects.count(),
    )


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=ROUTE_IDS)
def test_administrators_key_may_call_it(client: Client, world, ada_member, method, path, body):
    response = call(client, method, path(world), services_headers(ada_member), body)
    assert response.status_code in {200, 201, 204}, response.content


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=ROUTE_IDS)
def test_caller_without_key_gets_401_and_changes_nothing(client: Client, world, method, path, body):
    before = snapshot()
    response = call(client, method, path(world), {}, body)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_credentials"
    assert snapshot() == before


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=ROUTE_IDS)
def test_signed_in_member_without_key_gets_401(bob_client: Client, world, method, path, body):
    before = snapshot()
    response = call(bob_client, method, path(world), {}, body)
    assert response.status_code == 401
    assert snapshot() == before


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=ROUTE_IDS)
def test_wrong_key_gets_401_and_changes_nothing(client: Client, world, method, path, body):
    before = snapshot()
    headers = {"HTTP_X_SC_EMAIL": "ada@example.com", "HTTP_X_SC_KEY": "sck_wrong"}
    response = call(client, method, path(world), headers, body)
    assert (response.status_code, response.json()["error"]["code"]) == (401, "wrong_key")
    assert snapshot() == before


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=ROUTE_IDS)
def test_revoked_key_gets_401_and_changes_nothing(
    client: Client, world, ada_member, method, path, body
):
    old = services_headers(ada_member)
    services.regenerate_key(member=ada_member, by=ada_member.user)
    before = snapshot()
    response = call(client, method, path(world), old, body)
    assert (response.status_code, response.json()["error"]["code"]) == (401, "revoked_key")
    assert snapshot() == before


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=ROUTE_IDS)
def test_key_of_a_demoted_member_gets_403_and_changes_nothing(
    client: Client, world, ada_member, method, path, body
):
    headers = services_headers(ada_member)
    AccountMember.objects.filter(pk=ada_member.pk).update(role=MemberRole.MEMBER)
    before = snapshot()
    response = call(client, method, path(world), headers, body)
    assert (response.status_code, response.json()["error"]["code"]) == (403, "insufficient_role")
    assert snapshot() == before


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", lambda w: f"/surveys?portal={w['portal'].pk}", None),
        (
            "post",
            lambda w: f"/surveys/{w['survey'].pk}/invitations",
            {"invitations": [{"recipient_reference": "lead:2"}]},
        ),
        ("get", lambda w: f"/invitations?survey={w['survey'].pk}", None),
        ("get", lambda w: f"/responses?survey={w['survey'].pk}", None),
        ("delete", lambda w: f"/webhooks/{w['endpoint'].pk}", None),
    ],
    ids=["surveys of portal", "create invitations", "invitations", "responses", "delete webhook"],
)
def test_other_accounts_key_gets_404_for_this_accounts_objects(
    client: Client, world, carol_member, method, path, body
):
    before = snapshot()
    response = call(client, method, path(world), services_headers(carol_member), body)
    assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")
    assert snapshot() == before


def test_other_accounts_key_lists_only_its_own_account(client: Client, world, carol_member):
    headers = services_headers(carol_member)
    assert call(client, "get", "/account", headers).json()["name"] == "Carol Research"
    assert call(client, "get", "/portals", headers).json() == []
    assert call(client, "get", "/surveys", headers).json() == []
    assert call(client, "get", "/invitations", headers).json()["items"] == []
    assert call(client, "get", "/responses", headers).json()["items"] == []
    assert call(client, "get", "/webhooks", headers).json() == []
    assert [m["email"] for m in call(client, "get", "/members", headers).json()] == [
        "carol@example.com"
    ]


def services_headers(member: AccountMember) -> dict[str, Any]:
    from kizuna.testing.survey_keys import sc_headers

    return sc_headers(member)


# --- what each route answers ----------------------------------------------------------------


def test_portals_and_surveys_of_the_account(client: Client, world, ada_member, account):
    second = Portal.objects.create(account=account, name="Staff")
    closed = Survey.objects.create(
        portal=second, title="Lunch", public_id="lunch0001", is_open=False
    )
    headers = services_headers(ada_member)

    assert call(client, "get", "/portals", headers).json() == [
        {"id": world["portal"].pk, "name": "Customers"},
        {"id": second.pk, "name": "Staff"},
    ]
    assert call(client, "get", f"/surveys?portal={second.pk}", headers).json() == [
        {
            "id": closed.pk,
            "portal": second.pk,
            "title": "Lunch",
            "state": "closed",
            "public_link": "http://127.0.0.1:8000/s/lunch0001/",
        }
    ]
    assert [s["title"] for s in call(client, "get", "/surveys", headers).json()] == [
        "Satisfaction",
        "Lunch",
    ]
    assert call(client, "get", "/surveys", headers).json()[0]["state"] == "open"


def test_members_are_listed_with_their_roles_then_the_pending_invitations(
    client: Client, world, ada_member, account
):
    invite_members(account=account, emails=["zed@example.com"], by=ada_member.user, role="admin")
    [invitation] = MemberInvitation.objects.all()

    assert call(client, "get", "/members", services_headers(ada_member)).json() == [
        {
            "email": "ada@example.com",
            "name": "Ada Lovelace",
            "role": "admin",
            "state": "active",
            "expires_at": None,
        },
        {
            "email": "bob@example.com",
            "name": "Bob Smith",
            "role": "member",
            "state": "active",
            "expires_at": None,
        },
        {
            "email": "zed@example.com",
            "name": "",
            "role": "admin",
            "state": "invited",
            "expires_at": iso(invitation.expires_at),
        },
    ]


def test_inviting_members_answers_per_address_and_adds_nobody_before_they_accept(
    client: Client, world, ada_member, account
):
    make_user("erin@example.com")  # a user of the deployment answers like a new address
    first = call(
        client,
        "post",
        "/members",
        services_headers(ada_member),
        {"emails": ["Dan@Example.com", "erin@example.com"]},
    )
    again = call(
        client,
        "post",
        "/members",
        services_headers(ada_member),
        {"emails": ["bob@example.com", "dan@example.com"]},
    )

    dan, erin = MemberInvitation.objects.of(account).order_by("email")
    assert (first.status_code, again.status_code) == (200, 200)

    def result(email: str, status: str, expires_at: str | None, mail_sent: bool) -> dict[str, Any]:
        return {"email": email, "status": status, "expires_at": expires_at, "mail_sent": mail_sent}

    assert first.json() == {
        "results": [
            result("dan@example.com", "invited", iso(dan.expires_at), True),
            result("erin@example.com", "invited", iso(erin.expires_at), True),
        ]
    }
    assert again.json() == {
        "results": [
            result("bob@example.com", "existing", None, False),
            result("dan@example.com", "already_invited", iso(dan.expires_at), False),
        ]
    }
    assert set(
        AccountMember.objects.filter(account=account).values_list("user__email", flat=True)
    ) == {"ada@example.com", "bob@example.com"}
    assert [m.to for m in mail.outbox] == [["dan@example.com"], ["erin@example.com"]]
    # Nothing in the mail tells its sender whether the address has a user here.
    bodies = [re.sub(r"/survey/join/\S+", "", str(m.body)) for m in mail.outbox]
    assert bodies[0] == bodies[1]


def iso(moment: datetime.datetime) -> str:
    """A time as the API writes it: milliseconds, Z for UTC."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_inviting_an_invalid_email_names_it_and_invites_nobody(client: Client, world, ada_member):
    before = snapshot()
    response = call(
        client,
        "post",
        "/members",
        services_headers(ada_member),
        {"emails": ["ok@example.com", "nope"]},
    )

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert "nope" in error["fields"]["emails"][0]
    assert snapshot() == before
    assert mail.outbox == []


# --- invitations ----------------------------------------------------------------------------


@override_settings(KIZUNA_BASE_URL="https://kizuna.example.com")
def test_invitation_batch_returns_each_token_and_link(client: Client, world, ada_member):
    survey = world["survey"]
    expiry = (timezone.now() + datetime.timedelta(days=7)).isoformat()
    response = call(
        client,
        "post",
        f"/surveys/{survey.pk}/invitations",
        services_headers(ada_member),
        {
            "invitations": [
                {"recipient_reference": "lead:2", "email": "dan@example.com", "name": "Dan"},
                {"recipient_reference": "contact:3", "expires_at": expiry},
            ]
        },
    )

    assert response.status_code == 200
    items = response.json()["invitations"]
    invitations = {i.recipient_reference: i for i in Invitation.objects.filter(survey=survey)}
    assert [(i["recipient_reference"], i["created"], i["state"]) for i in items] == [
        ("lead:2", True, "sent"),
        ("contact:3", True, "sent"),
    ]
    assert items[0]["token"] == invitations["lead:2"].token
    assert items[0]["link"] == f"https://kizuna.example.com/s/i/{invitations['lead:2'].token}/"
    assert items[0]["email"] == "dan@example.com"
    assert invitations["contact:3"].expires_at is not None


def test_invitation_batch_is_idempotent_per_survey_and_recipient_reference(
    client: Client, world, ada_member
):
    survey = world["survey"]
    path = f"/surveys/{survey.pk}/invitations"
    body = {"invitations": [{"recipient_reference": "lead:2"}, {"recipient_reference": "lead:1"}]}
    first = call(client, "post", path, services_headers(ada_member), body).json()["invitations"]
    again = call(client, "post", path, services_headers(ada_member), body).json()["invitations"]

    assert [i["created"] for i in first] == [True, False]  # lead:1 was invited by the fixture
    assert [i["created"] for i in again] == [False, False]
    assert [i["token"] for i in again] == [i["token"] for i in first]
    assert Invitation.objects.filter(survey=survey).count() == 2


def test_inviting_the_same_reference_again_renews_a_link_not_completed_yet(
    client: Client, world, ada_member
):
    survey = world["survey"]
    path = f"/surveys/{survey.pk}/invitations"
    soon = timezone.now().replace(microsecond=0) + datetime.timedelta(days=1)
    later = soon + datetime.timedelta(days=30)

    def invite(reference: str, expires_at: datetime.datetime | None) -> dict[str, Any]:
        item = {
            "recipient_reference": reference,
            "expires_at": expires_at and expires_at.isoformat(),
        }
        body = {"invitations": [item]}
        (invitation,) = call(client, "post", path, services_headers(ada_member), body).json()[
            "invitations"
        ]
        return invitation

    first = invite("lead:7", soon)
    renewed = invite("lead:7", later)
    shorter = invite("lead:7", soon)  # a shorter expiry never cuts a link short
    completed = invite("lead:8", soon)
    Invitation.objects.filter(token=completed["token"]).update(completed_at=timezone.now())
    after_completion = invite("lead:8", later)

    assert renewed["token"] == first["token"]
    assert (first["created"], renewed["created"]) == (True, False)
    stored = Invitation.objects.get(token=first["token"])
    assert stored.expires_at == later
    assert datetime.datetime.fromisoformat(shorter["expires_at"]) == later
    assert invite("lead:7", None)["expires_at"] is None  # no expiry: it never expires
    assert datetime.datetime.fromisoformat(after_completion["expires_at"]) == soon


CLOSED_MESSAGES = {
    "en": (
        "This survey is closed: it accepts no responses, so no invitations are created for it. "
        "Open it again in Survey to invite people."
    ),
    "ja": (
        "このアンケートは受付を終了しているため回答を受け付けず、招待も作成されません。"
        "招待するには、Survey でアンケートの受付を再開してください。"
    ),
}


def close(survey: Survey, how: str) -> None:
    if how == "closed by hand":
        survey.is_open = False
    else:
        survey.closes_at = timezone.now() - datetime.timedelta(minutes=1)
    survey.save(update_fields=["is_open", "closes_at"])


@pytest.mark.parametrize("how", ["closed by hand", "past its closing time"])
@pytest.mark.parametrize("language", ["en", "ja"])
def test_invitations_to_a_closed_survey_are_refused_with_409_and_none_is_created(
    client: Client, world, ada_member, how: str, language: str
):
    survey = world["survey"]
    close(survey, how)
    before = list(Invitation.objects.order_by("pk").values_list("pk", "token"))

    response = call(
        client,
        "post",
        f"/surveys/{survey.pk}/invitations",
        {**services_headers(ada_member), "HTTP_ACCEPT_LANGUAGE": language},
        {"invitations": [{"recipient_reference": "lead:2", "email": "dan@example.com"}]},
    )

    assert response.status_code == 409
    assert response.json() == {
        "error": {"code": "survey_closed", "message": CLOSED_MESSAGES[language], "fields": {}}
    }
    assert list(Invitation.objects.order_by("pk").values_list("pk", "token")) == before


def test_re_posting_an_earlier_invitation_to_a_survey_closed_since_is_refused_too(
    client: Client, world, ada_member
):
    survey = world["survey"]
    path = f"/surveys/{survey.pk}/invitations"
    body = {"invitations": [{"recipient_reference": "lead:2"}]}
    first = call(client, "post", path, services_headers(ada_member), body)
    close(survey, "closed by hand")

    again = call(client, "post", path, services_headers(ada_member), body)

    assert first.status_code == 200
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "survey_closed"
    assert Invitation.objects.filter(survey=survey, recipient_reference="lead:2").count() == 1


def test_reopening_a_closed_survey_accepts_invitations_again(client: Client, world, ada_member):
    survey = world["survey"]
    close(survey, "closed by hand")
    path = f"/surveys/{survey.pk}/invitations"
    body = {"invitations": [{"recipient_reference": "lead:2"}]}
    refused = call(client, "post", path, services_headers(ada_member), body)
    survey.is_open = True
    survey.save(update_fields=["is_open"])

    accepted = call(client, "post", path, services_headers(ada_member), body)

    assert refused.status_code == 409
    assert accepted.status_code == 200
    assert [i["created"] for i in accepted.json()["invitations"]] == [True]


def test_the_openapi_document_lists_409_survey_closed_for_invitations(client: Client):
    document = client.get(API + "/openapi.json").json()

    operation = document["paths"][API + "/surveys/{survey_id}/invitations"]["post"]
    assert "409" in operation["responses"]
    assert "survey_closed" in operation["description"]
    assert "re-posts" in operation["description"]


def test_invitation_batch_of_more_than_1000_is_refused_whole(client: Client, world, ada_member):
    body = {"invitations": [{"recipient_reference": f"lead:{n}"} for n in range(1001)]}
    before = Invitation.objects.count()

    response = call(
        client,
        "post",
        f"/surveys/{world['survey'].pk}/invitations",
        services_headers(ada_member),
        body,
    )

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "batch_too_large"
    assert "1000" in response.json()["error"]["message"]
    assert Invitation.objects.count() == before


def test_invitation_batch_of_exactly_1000_is_accepted(client: Client, world, ada_member):
    body = {"invitations": [{"recipient_reference": f"lead:{n + 10}"} for n in range(1000)]}
    response = call(
        client,
        "post",
        f"/surveys/{world['survey'].pk}/invitations",
        services_headers(ada_member),
        body,
    )
    assert response.status_code == 200
    assert len(response.json()["invitations"]) == 1000
    assert Invitation.objects.filter(survey=world["survey"]).count() == 1001


def queries_of(client: Client, member: AccountMember, method: str, path: str, body: Any = None):
    """The answer of one call and the number of SQL queries it made."""
    headers = services_headers(member)
    client.get(API + "/account", **headers)  # the key's last use is written once
    with CaptureQueriesContext(connection) as queries:
        response = call(client, method, path, headers, body)
    assert response.status_code == 200
    return response.json(), len(queries)


def test_an_invitation_batch_takes_as_many_queries_for_30_invitations_as_for_3(
    client: Client, world, ada_member
):
    survey = world["survey"]
    path = f"/surveys/{survey.pk}/invitations"
    # A third of each batch was invited and has responded: its answer names the response.
    responses = {
        reference: make_response(survey, reference=reference)
        for reference in ["few:0", *(f"many:{n}" for n in range(10))]
    }

    def invite(references: list[str]) -> tuple[list[dict[str, Any]], int]:
        body = {"invitations": [{"recipient_reference": r} for r in references]}
        answer, count = queries_of(client, ada_member, "post", path, body)
        return answer["invitations"], count

    few, few_queries = invite([f"few:{n}" for n in range(3)])
    many, many_queries = invite([f"many:{n}" for n in range(30)])

    assert many_queries == few_queries
    assert [i["response_id"] for i in few + many if i["response_id"]] == [
        str(response.pk) for response in responses.values()
    ]
    assert sum(i["created"] for i in few + many) == 2 + 20


def test_listing_invitations_takes_as_many_queries_for_30_invitations_as_for_3(
    client: Client, world, ada_member
):
    survey = world["survey"]
    path = f"/invitations?survey={survey.pk}"
    for n in range(2):
        make_response(survey, reference=f"few:{n}")
    few, few_queries = queries_of(client, ada_member, "get", path)
    for n in range(27):
        make_response(survey, reference=f"many:{n}")
    many, many_queries = queries_of(client, ada_member, "get", path)

    assert (len(few["items"]), len(many["items"])) == (3, 30)
    assert many_queries == few_queries
    assert all(item["response_id"] for item in many["items"])


def test_invitation_batch_names_each_bad_item_and_writes_nothing(client: Client, world, ada_member):
    before = Invitation.objects.count()
    response = call(
        client,
        "post",
        f"/surveys/{world['survey'].pk}/invitations",
        services_headers(ada_member),
        {
            "invitations": [
                {"recipient_reference": "lead:7", "email": "not-an-email"},
                {"recipient_reference": ""},
                {"recipient_reference": "lead:7"},
                {"recipient_reference": "lead:8", "expires_at": "2020-01-01T00:00:00+00:00"},
            ]
        },
    )

    assert response.status_code == 422
    fields = response.json()["error"]["fields"]
    assert set(fields) == {
        "invitations.0.email",
        "invitations.1.recipient_reference",
        "invitations.2.recipient_reference",
        "invitations.3.expires_at",
    }
    assert Invitation.objects.count() == before


def test_invitation_batch_with_a_missing_field_answers_a_json_field_error(
    client: Client, world, ada_member
):
    response = call(
        client,
        "post",
        f"/surveys/{world['survey'].pk}/invitations",
        services_headers(ada_member),
        {"invitations": [{"email": "dan@example.com"}]},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid"
    assert list(response.json()["error"]["fields"]) == ["invitations.0.recipient_reference"]


def test_invitations_are_listed_with_their_state_and_times(client: Client, world, ada_member):
    survey = world["survey"]
    now = timezone.now()
    Invitation.objects.create(survey=survey, recipient_reference="opened", opened_at=now)
    Invitation.objects.create(
        survey=survey, recipient_reference="started", opened_at=now, started_at=now
    )
    Invitation.objects.create(
        survey=survey, recipient_reference="expired", expires_at=now - datetime.timedelta(hours=1)
    )
    Invitation.objects.create(survey=survey, recipient_reference="sent")
    Invitation.objects.filter(recipient_reference="lead:1").update(completed_at=now)

    items = call(
        client, "get", f"/invitations?survey={survey.pk}", services_headers(ada_member)
    ).json()["items"]

    assert [(i["recipient_reference"], i["state"]) for i in items] == [
        ("lead:1", "completed"),
        ("opened", "opened"),
        ("started", "started"),
        ("expired", "expired"),
        ("sent", "sent"),
    ]
    assert items[0]["response_id"] == str(world["response"].pk)
    assert items[1]["opened_at"] is not None


def test_invitations_can_be_looked_up_by_recipient_reference_across_surveys(
    client: Client, world, ada_member, portal
):
    other = Survey.objects.create(portal=portal, title="Second", public_id="second0001")
    Invitation.objects.create(survey=other, recipient_reference="lead:1")

    items = call(
        client, "get", "/invitations?recipient_reference=lead:1", services_headers(ada_member)
    ).json()["items"]

    assert sorted(i["survey"] for i in items) == sorted([world["survey"].pk, other.pk])


def test_invitation_pages_follow_the_cursor(client: Client, world, ada_member):
    survey = world["survey"]
    for n in range(4):
        Invitation.objects.create(survey=survey, recipient_reference=f"p{n}")
    headers = services_headers(ada_member)

    first = call(client, "get", f"/invitations?survey={survey.pk}&limit=3", headers).json()
    second = call(
        client,
        "get",
        f"/invitations?survey={survey.pk}&limit=3&cursor={first['next_cursor']}",
        headers,
    ).json()

    assert [i["recipient_reference"] for i in first["items"]] == ["lead:1", "p0", "p1"]
    assert [i["recipient_reference"] for i in second["items"]] == ["p2", "p3"]
    assert second["next_cursor"] is None


# --- responses ------------------------------------------------------------------------------


def test_responses_are_listed_with_a_cursor_since_a_time(client: Client, world, ada_member):
    survey = world["survey"]
    base = datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC)
    world["response"].submitted_at = base
    world["response"].save(update_fields=["submitted_at"])
    later = [
        make_response(
            survey, reference=f"lead:{n + 10}", submitted_at=base + datetime.timedelta(days=n + 1)
        )
        for n in range(3)
    ]
    headers = services_headers(ada_member)
    since = (base + datetime.timedelta(hours=1)).isoformat().replace("+00:00", "Z")

    first = call(
        client, "get", f"/responses?survey={survey.pk}&since={since}&limit=2", headers
    ).json()
    second = call(
        client,
        "get",
        f"/responses?survey={survey.pk}&limit=2&cursor={first['next_cursor']}",
        headers,
    ).json()

    assert [r["response_id"] for r in first["items"]] == [str(r.pk) for r in later[:2]]
    assert [r["response_id"] for r in second["items"]] == [str(later[2].pk)]
    assert second["next_cursor"] is None
    item = first["items"][0]
    assert item["recipient_reference"] == "lead:10"
    assert [a["display"] for a in item["answers"]] == ["Good", "素晴らしい", "9"]


def test_listing_responses_takes_the_same_number_of_queries_for_many(
    client: Client, world, ada_member, django_assert_max_num_queries
):
    for n in range(20):
        make_response(world["survey"], reference=f"many:{n}")
    headers = services_headers(ada_member)
    client.get(API + "/responses", **headers)  # the key's last use is written once

    with django_assert_max_num_queries(8):
        response = client.get(API + "/responses", **headers)
    assert len(response.json()["items"]) == 21


@pytest.mark.parametrize(
    ("route", "key"),
    [
        ("/responses", None),
        ("/invitations", None),
        ("/responses", "not-a-uuid"),
        ("/invitations", "abc"),
        ("/invitations", "9" * 40),  # would overflow a bigint
    ],
)
def test_a_bad_cursor_is_a_field_error(client: Client, world, ada_member, route, key):
    cursor = "garbage" if key is None else cursors.encode_cursor(timezone.now(), key)

    response = call(client, "get", f"{route}?cursor={cursor}", services_headers(ada_member))

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid"
    assert response.json()["error"]["fields"] == {
        "cursor": ["Use the next_cursor of a previous answer."]
    }


def test_a_page_size_over_the_limit_is_a_field_error(client: Client, world, ada_member):
    response = call(client, "get", "/responses?limit=501", services_headers(ada_member))
    assert response.status_code == 422
    assert list(response.json()["error"]["fields"]) == ["limit"]


# --- webhook endpoints ----------------------------------------------------------------------


def test_creating_a_webhook_endpoint_returns_its_signing_secret(client: Client, world, ada_member):
    response = call(
        client,
        "post",
        "/webhooks",
        services_headers(ada_member),
        {"url": "https://93.184.215.14/hook", "events": ["response.completed", "response.deleted"]},
    )

    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    endpoint = WebhookEndpoint.objects.get(pk=body["id"])
    assert body["secret"].startswith("whsec_")
    assert body["secret"] == endpoint.signing_secret()
    assert body["events"] == ["response.completed", "response.deleted"]
    assert body["is_enabled"] is True
    assert "secret" not in call(client, "get", "/webhooks", services_headers(ada_member)).json()[0]


def test_registering_the_same_url_again_returns_the_same_endpoint_enabled_again(
    client: Client, world, ada_member
):
    from kizuna.survey.webhooks.services import disable_endpoint

    headers = services_headers(ada_member)
    body = {"url": "https://93.184.215.14/hook", "events": ["response.completed"]}
    first = call(client, "post", "/webhooks", headers, body).json()
    disable_endpoint(
        endpoint=WebhookEndpoint.objects.get(pk=first["id"]), reason="The endpoint answered 410."
    )

    again = call(
        client,
        "post",
        "/webhooks",
        headers,
        {**body, "events": ["response.completed", "response.deleted"]},
    )

    assert again.status_code == 200
    assert (again.json()["id"], again.json()["secret"]) == (first["id"], first["secret"])
    assert again.json()["is_enabled"] is True
    assert again.json()["events"] == ["response.completed", "response.deleted"]
    assert WebhookEndpoint.objects.filter(url="https://93.184.215.14/hook").count() == 1


def test_webhook_endpoint_on_a_private_address_is_refused(client: Client, world, ada_member):
    before = WebhookEndpoint.objects.count()
    response = call(
        client,
        "post",
        "/webhooks",
        services_headers(ada_member),
        {"url": "http://10.1.2.3/hook", "events": ["response.completed"]},
    )

    assert response.status_code == 422
    assert response.json()["error"]["fields"]["url"] == [
        "This URL points to a private or local network address, which this deployment "
        "does not allow."
    ]
    assert WebhookEndpoint.objects.count() == before


def test_webhook_endpoint_with_unknown_events_is_refused(client: Client, world, ada_member):
    response = call(
        client,
        "post",
        "/webhooks",
        services_headers(ada_member),
        {"url": "https://93.184.215.14/hook", "events": ["response.created"]},
    )
    assert response.status_code == 422
    assert list(response.json()["error"]["fields"]) == ["events"]


def test_deleting_a_webhook_endpoint(client: Client, world, ada_member):
    endpoint = world["endpoint"]
    response = call(client, "delete", f"/webhooks/{endpoint.pk}", services_headers(ada_member))

    assert response.status_code == 204
    assert not WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


def test_routes_with_their_own_status_answer_201_200_204_without_deprecated_tuples(
    client: Client, world, ada_member
):
    headers = services_headers(ada_member)
    body = {"url": "https://93.184.215.14/hook", "events": ["response.completed"]}
    with warnings.catch_warnings():
        # django-ninja deprecates returning (status, body); Status(status, body) is the API.
        warnings.simplefilter("error", DeprecationWarning)
        created = call(client, "post", "/webhooks", headers, body)
        again = call(client, "post", "/webhooks", headers, body)
        deleted = call(client, "delete", f"/webhooks/{created.json()['id']}", headers)

    assert [created.status_code, again.status_code, deleted.status_code] == [201, 200, 204]
    assert again.json()["id"] == created.json()["id"]
    assert deleted.content == b""
    assert not WebhookEndpoint.objects.filter(pk=created.json()["id"]).exists()
