"""Leads and contacts through the API, as Ada (administrator), Bob (standard member)
and Charlie (another organization)."""

from __future__ import annotations

from typing import Any

import pytest

from kizuna.crm.models import Activity, ActivityKind, Contact, Lead, Membership, Organization
from kizuna.identity.models import User
from kizuna.testing.crm_api import ApiClient


@pytest.fixture
def records(
    organization: Organization,
    other_organization: Organization,
    ada: User,
    ada_membership: Membership,
    bob: User,
    bob_membership: Membership,
) -> dict[str, Any]:
    return {
        "ada_lead": Lead.objects.create(
            organization=organization,
            family_name="山田",
            given_name="太郎",
            email="taro@example.jp",
            owner=ada,
            status="qualified",
            lead_source="web",
        ),
        "bob_lead": Lead.objects.create(
            organization=organization,
            family_name="Smith",
            given_name="Anna",
            email="anna@example.com",
            owner=bob,
            company="ACME",
        ),
        "other_lead": Lead.objects.create(organization=other_organization, family_name="Hidden"),
        "contact": Contact.objects.create(
            organization=organization, family_name="佐藤", department="営業部", owner=bob
        ),
        "other_contact": Contact.objects.create(
            organization=other_organization, family_name="Else"
        ),
    }


@pytest.mark.parametrize("persona", ["ada_api", "bob_api"])
def test_members_list_the_leads_of_their_organization(
    persona: str, request: pytest.FixtureRequest, records: dict[str, Any]
) -> None:
    response = request.getfixturevalue(persona).get("/leads", sort="name")
    assert response.status_code == 200
    body = response.json()
    assert [item["family_name"] for item in body["items"]] == ["Smith", "山田"]
    assert body["next"] is None
    smith = body["items"][0]
    assert smith["owner_email"] == "bob@example.com"
    assert smith["status"] == "new"
    assert smith["display_name"] == "Anna Smith"


def test_charlie_lists_only_his_own_organization(
    charlie_api: ApiClient, records: dict[str, Any]
) -> None:
    assert [i["family_name"] for i in charlie_api.get("/leads").json()["items"]] == ["Hidden"]
    assert [i["family_name"] for i in charlie_api.get("/contacts").json()["items"]] == ["Else"]


@pytest.mark.parametrize("module", ["leads", "contacts"])
def test_charlie_gets_404_for_every_record_of_another_organization(
    charlie_api: ApiClient, records: dict[str, Any], module: str
) -> None:
    record = records["ada_lead"] if module == "leads" else records["contact"]
    path = f"/{module}/{record.pk}"
    for response in (
        charlie_api.get(path),
        charlie_api.patch(path, {"family_name": "Taken"}),
        charlie_api.delete(path),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    record.refresh_from_db()
    assert record.family_name in ("山田", "佐藤")


def test_bob_reads_a_lead_of_his_organization(bob_api: ApiClient, records: dict[str, Any]) -> None:
    lead = records["ada_lead"]
    body = bob_api.get(f"/leads/{lead.pk}").json()
    assert {
        k: body[k] for k in ("id", "family_name", "email", "status", "lead_source", "owner_email")
    } == {
        "id": lead.pk,
        "family_name": "山田",
        "email": "taro@example.jp",
        "status": "qualified",
        "lead_source": "web",
        "owner_email": "ada@example.com",
    }


def test_bob_creates_a_lead_with_a_timeline_entry(
    bob_api: ApiClient, bob: User, organization: Organization
) -> None:
    response = bob_api.post(
        "/leads",
        {
            "family_name": "鈴木",
            "given_name": "一郎",
            "email": "ichiro@example.jp",
            "owner_id": bob.pk,
            "lead_source": "event",
        },
    )
    assert response.status_code == 201
    lead = Lead.objects.get(family_name="鈴木")
    assert response.json()["id"] == lead.pk
    assert (lead.organization, lead.created_by, lead.owner, lead.status, lead.lead_source) == (
        organization,
        bob,
        bob,
        "new",
        "event",
    )
    activity = Activity.objects.get(lead=lead)
    assert (activity.kind, activity.actor) == (ActivityKind.CREATED, bob)


@pytest.mark.usefixtures("charlie_membership")
def test_validation_errors_name_their_fields_and_create_nothing(
    ada_api: ApiClient, charlie: User, records: dict[str, Any]
) -> None:
    before = Lead.objects.count()
    response = ada_api.post(
        "/leads", {"family_name": "", "email": "not-an-email", "owner_id": charlie.pk}
    )
    assert response.status_code == 422
    assert response.json() == {
        "error": {
            "code": "invalid",
            "message": "Some values are not valid.",
            "fields": {
                "family_name": ["This field is required."],
                "email": ["Enter a valid email address."],
                "owner_id": [
                    "Select a valid choice. That choice is not one of the available choices."
                ],
            },
        }
    }
    assert Lead.objects.count() == before


def test_schema_errors_name_their_fields_too(ada_api: ApiClient) -> None:
    response = ada_api.post(
        "/leads", {"given_name": "No family", "status": "maybe", "colour": "blue"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["fields"] == {
        "family_name": ["This field is required."],
        "status": ["Use one of: 'new', 'contacted', 'qualified', 'unqualified' or 'converted'."],
        "colour": ["There is no such field."],
    }
    assert Lead.objects.count() == 0


def test_schema_errors_are_in_japanese_too(ada_api: ApiClient) -> None:
    response = ada_api.client.post(
        "/crm/api/v1/leads",
        '{"family_name": 7, "email_opt_out": "maybe", "owner_id": "x"}',
        content_type="application/json",
        headers={**ada_api.headers, "Accept-Language": "ja"},
    )
    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "invalid",
        "message": "無効な値があります。",
        "fields": {
            "family_name": ["文字列を送信してください。"],
            "owner_id": ["整数を送信してください。"],
            "email_opt_out": ["true か false を送信してください。"],
        },
    }
    assert ada_api.get("/leads", limit="500").json()["error"]["fields"] == {
        "limit": ["Use a number of at most 100."]
    }


def test_converted_is_not_a_status_you_can_set(ada_api: ApiClient) -> None:
    response = ada_api.post("/leads", {"family_name": "X", "status": "converted"})
    assert response.status_code == 422
    assert list(response.json()["error"]["fields"]) == ["status"]


def test_validation_messages_follow_the_language(ada_api: ApiClient) -> None:
    response = ada_api.client.post(
        "/crm/api/v1/contacts",
        '{"family_name": "X", "email": "bad"}',
        content_type="application/json",
        headers={**ada_api.headers, "Accept-Language": "ja"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["fields"] == {
        "email": ["有効なメールアドレスを入力してください。"]
    }


def test_patch_changes_only_the_fields_sent(
    bob_api: ApiClient, bob: User, records: dict[str, Any]
) -> None:
    lead = records["ada_lead"]
    response = bob_api.patch(
        f"/leads/{lead.pk}", {"company": "キズナ株式会社", "status": "contacted"}
    )
    assert response.status_code == 200
    assert (response.json()["company"], response.json()["status"]) == (
        "キズナ株式会社",
        "contacted",
    )
    lead.refresh_from_db()
    assert (lead.family_name, lead.email, lead.company, lead.status, lead.modified_by) == (
        "山田",
        "taro@example.jp",
        "キズナ株式会社",
        "contacted",
        bob,
    )
    activity = Activity.objects.get(lead=lead, kind=ActivityKind.EDITED)
    assert sorted(activity.data["fields"]) == ["company", "status"]


def test_patch_can_clear_the_owner_and_refuses_bad_values(
    ada_api: ApiClient, records: dict[str, Any]
) -> None:
    contact = records["contact"]
    assert ada_api.patch(f"/contacts/{contact.pk}", {"owner_id": None}).json()["owner_id"] is None
    response = ada_api.patch(f"/contacts/{contact.pk}", {"email": "@", "department": "x" * 101})
    assert response.status_code == 422
    assert sorted(response.json()["error"]["fields"]) == ["department", "email"]
    contact.refresh_from_db()
    assert (contact.owner, contact.department) == (None, "営業部")


def test_delete_rule_administrators_delete_any_record(
    ada_api: ApiClient, records: dict[str, Any]
) -> None:
    lead = records["bob_lead"]
    response = ada_api.delete(f"/leads/{lead.pk}")
    assert response.status_code == 204
    assert not Lead.objects.filter(pk=lead.pk).exists()


def test_delete_rule_standard_members_delete_only_records_they_own(
    bob_api: ApiClient, records: dict[str, Any]
) -> None:
    adas = records["ada_lead"]
    response = bob_api.delete(f"/leads/{adas.pk}")
    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "permission_denied",
        "message": "Only administrators and the record's owner can delete it.",
        "fields": {},
    }
    assert Lead.objects.filter(pk=adas.pk).exists()
    assert bob_api.delete(f"/leads/{records['bob_lead'].pk}").status_code == 204
    assert bob_api.delete(f"/contacts/{records['contact'].pk}").status_code == 204
    assert not Contact.objects.filter(pk=records["contact"].pk).exists()


def test_contacts_are_created_read_and_listed(ada_api: ApiClient, records: dict[str, Any]) -> None:
    response = ada_api.post(
        "/contacts", {"family_name": "高橋", "department": "経理部", "email": "T@Example.jp"}
    )
    assert response.status_code == 201
    contact_id = response.json()["id"]
    body = ada_api.get(f"/contacts/{contact_id}").json()
    assert (body["family_name"], body["department"], body["email"]) == (
        "高橋",
        "経理部",
        "T@Example.jp",
    )
    assert "status" not in body
    assert Activity.objects.filter(contact_id=contact_id, kind=ActivityKind.CREATED).count() == 1
    assert ada_api.get("/contacts", email="t@example.jp").json()["items"][0]["id"] == contact_id


@pytest.mark.usefixtures("bob_membership")
def test_list_filters(ada_api: ApiClient, ada: User, bob: User, records: dict[str, Any]) -> None:
    def names(**params: Any) -> list[str]:
        response = ada_api.get("/leads", **params)
        assert response.status_code == 200, response.json()
        return [item["family_name"] for item in response.json()["items"]]

    assert names(status="qualified") == ["山田"]
    assert names(status=["qualified", "new"], sort="name") == ["Smith", "山田"]
    assert names(owner="me") == ["山田"]
    assert names(owner=str(bob.pk)) == ["Smith"]
    assert names(owner="none") == []
    assert names(source="web") == ["山田"]
    assert names(source="none") == ["Smith"]
    assert names(q="acme") == ["Smith"]
    assert names(email="ANNA@example.com") == ["Smith"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "bogus"}, "status"),
        ({"owner": "someone"}, "owner"),
        ({"source": "tv"}, "source"),
        ({"sort": "email"}, "sort"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
    ],
)
def test_bad_filters_are_validation_errors(
    ada_api: ApiClient, params: dict[str, str], field: str
) -> None:
    response = ada_api.get("/leads", **params)
    assert response.status_code == 422
    assert list(response.json()["error"]["fields"]) == [field]


def test_cursor_pagination_walks_every_record_once(
    ada_api: ApiClient, organization: Organization
) -> None:
    for n in range(5):
        Lead.objects.create(organization=organization, family_name=f"P{n}")
    response = ada_api.get("/leads", sort="name", limit="2")
    seen: list[str] = []
    pages = 0
    while True:
        body = response.json()
        seen += [item["family_name"] for item in body["items"]]
        pages += 1
        if body["next"] is None:
            break
        assert body["next"].startswith("http://testserver/crm/api/v1/leads?")
        assert "limit=2" in body["next"] and "sort=name" in body["next"]
        response = ada_api.url(body["next"])
    assert (seen, pages) == (["P0", "P1", "P2", "P3", "P4"], 3)
