from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

from kizuna.crm.imports.exporting import guard_cell
from kizuna.crm.imports.models import ImportJob
from kizuna.crm.models import Contact, Lead, LeadSource, LeadStatus, Membership, Organization
from kizuna.identity.models import User
from kizuna.testing.csvfiles import upload

LEADS = reverse("crm_imports:export", args=["leads"])
CONTACTS = reverse("crm_imports:export", args=["contacts"])


def _body(response: Any) -> bytes:
    return b"".join(response.streaming_content)


def _rows(response: Any) -> list[list[str]]:
    body = _body(response)
    assert body.startswith(b"\xef\xbb\xbf")
    text = body.decode("utf-8-sig")
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "")
    return list(csv.reader(io.StringIO(text, newline="")))


@pytest.fixture
def leads(
    organization: Organization,
    other_organization: Organization,
    ada: User,
    ada_membership: Membership,
    bob: User,
    bob_membership: Membership,
) -> None:
    Lead.objects.create(
        organization=organization,
        family_name="山田",
        given_name="太郎",
        company="=HYPERLINK(1)",
        email="taro@example.jp",
        status=LeadStatus.QUALIFIED,
        lead_source=LeadSource.WEB,
        owner=ada,
    )
    Lead.objects.create(
        organization=organization,
        family_name="Smith",
        given_name="Anna",
        company="ACME",
        email="anna@example.com",
        status=LeadStatus.NEW,
        owner=bob,
        phone="+81 3 0000 0000",
    )
    Lead.objects.create(
        organization=other_organization, family_name="Hidden", email="h@example.com"
    )


def test_export_is_utf8_with_bom_and_crlf_and_guards_formulas(
    ada_client: Client, leads: None
) -> None:
    response = ada_client.get(LEADS + "?sort=name")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="leads-')
    rows = _rows(response)
    assert rows[0][:10] == [
        "ID",
        "Family name",
        "Given name",
        "Company",
        "Title",
        "Email",
        "Phone",
        "Lead status",
        "Lead source",
        "Owner",
    ]
    assert [row[1:4] for row in rows[1:]] == [
        ["Smith", "Anna", "ACME"],
        ["山田", "太郎", "'=HYPERLINK(1)"],
    ]
    assert rows[2][7:10] == ["Qualified", "Web site", "ada@example.com"]
    assert rows[1][6] == "'+81 3 0000 0000"


def test_export_headers_and_labels_follow_the_language(
    ada_client: Client, ada: User, leads: None
) -> None:
    ada.language = "ja"
    ada.save(update_fields=["language"])
    response = ada_client.get(LEADS + "?q=山田", HTTP_ACCEPT_LANGUAGE="ja")
    rows = _rows(response)
    with translation.override("ja"):
        from kizuna.crm.imports.exporting import header_row

        assert rows[0] == header_row("leads")
    assert rows[0][9] == "担当者"
    assert len(rows) == 2
    assert rows[1][1] == "山田"


@pytest.mark.usefixtures("bob_membership")
def test_export_applies_the_list_filters(ada_client: Client, bob: User, leads: None) -> None:
    assert [r[1] for r in _rows(ada_client.get(LEADS + "?status=new"))[1:]] == ["Smith"]
    assert [r[1] for r in _rows(ada_client.get(LEADS + f"?owner={bob.pk}"))[1:]] == ["Smith"]
    assert [r[1] for r in _rows(ada_client.get(LEADS + "?source=web"))[1:]] == ["山田"]
    assert [r[1] for r in _rows(ada_client.get(LEADS + "?owner=me"))[1:]] == ["山田"]
    assert [r[1] for r in _rows(ada_client.get(LEADS + "?q=acme"))[1:]] == ["Smith"]
    assert [r[1] for r in _rows(ada_client.get(LEADS + "?sort=-name"))[1:]] == ["山田", "Smith"]
    # Values the list does not know are ignored rather than failing.
    assert len(_rows(ada_client.get(LEADS + "?owner=x&status=bogus&source=zz&sort=?"))) == 3


def test_bob_exports_his_organization_and_charlie_only_his_own(
    bob_client: Client, charlie_client: Client, leads: None
) -> None:
    assert sorted(r[1] for r in _rows(bob_client.get(LEADS))[1:]) == ["Smith", "山田"]
    assert [r[1] for r in _rows(charlie_client.get(LEADS))[1:]] == ["Hidden"]


def test_contacts_export_has_the_department(ada_client: Client, organization: Organization) -> None:
    Contact.objects.create(organization=organization, family_name="Sato", department="営業部")
    rows = _rows(ada_client.get(CONTACTS))
    assert rows[0][5] == "Department"
    assert rows[1][5] == "営業部"


def test_signed_out_visitors_and_unknown_modules_get_no_file(
    client: Client, ada_client: Client
) -> None:
    response = client.get(LEADS)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("identity:login"))
    assert ada_client.get(reverse("crm_imports:export", args=["deals"])).status_code == 404


def test_an_exported_file_imports_back_with_every_column_mapped(
    ada_client: Client, leads: None
) -> None:
    body = _body(ada_client.get(LEADS))
    ada_client.post(reverse("crm_imports:start"), {"module": "leads", "file": upload(body)})
    job = ImportJob.objects.get()
    assert sorted(job.mapping.values()) == sorted(
        [
            "family_name",
            "given_name",
            "company",
            "title",
            "email",
            "phone",
            "status",
            "lead_source",
            "owner",
            "postal_code",
            "region",
            "city",
            "street",
            "country",
            "description",
            "email_opt_out",
        ]
    )
    preview = ada_client.get(reverse("crm_imports:preview", args=[job.pk]))
    assert preview.context["summary"]["errors"] == 0
    assert preview.context["summary"]["duplicates"] == 2


def test_guard_cell_quotes_only_formula_starts() -> None:
    assert [guard_cell(v) for v in ["=1+1", "+1", "-1", "@SUM", "plain", "1-2"]] == [
        "'=1+1",
        "'+1",
        "'-1",
        "'@SUM",
        "plain",
        "1-2",
    ]
