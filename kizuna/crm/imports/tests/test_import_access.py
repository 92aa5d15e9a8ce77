"""Persona matrix of the import pages: Ada (administrator), Bob (standard member),
Charlie (another organization), signed out."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from kizuna.crm.imports.models import ImportJob, ImportStatus
from kizuna.crm.models import Lead, Organization
from kizuna.identity.models import User
from kizuna.testing.csvfiles import EN_HEADERS, csv_bytes, lead_rows, upload

START = reverse("crm_imports:start")
JOB_PAGES = ["detail", "mapping", "preview"]
JOB_ACTIONS = ["run", "discard"]


@pytest.fixture
def ada_job(ada_client: Client) -> ImportJob:
    ada_client.post(
        START, {"module": "leads", "file": upload(csv_bytes([EN_HEADERS, *lead_rows(2)]))}
    )
    return ImportJob.objects.get()


@pytest.mark.parametrize("persona", ["ada_client", "bob_client", "charlie_client"])
def test_every_member_can_open_the_import_page(
    persona: str, request: pytest.FixtureRequest
) -> None:
    response = request.getfixturevalue(persona).get(START + "?module=contacts")
    assert response.status_code == 200
    assert response.context["form"].initial == {"module": "contacts"}


def test_signed_out_visitors_are_sent_to_sign_in(client: Client, ada_job: ImportJob) -> None:
    for url in [
        START,
        *(reverse(f"crm_imports:{name}", args=[ada_job.pk]) for name in JOB_PAGES),
    ]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("identity:login"))
    for action in JOB_ACTIONS:
        response = client.post(reverse(f"crm_imports:{action}", args=[ada_job.pk]), {})
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("identity:login"))
    assert Lead.objects.count() == 0
    ada_job.refresh_from_db()
    assert ada_job.status == ImportStatus.UPLOADED


def test_a_user_without_organization_gets_404(user_client: Client) -> None:
    assert user_client.get(START).status_code == 404


@pytest.mark.parametrize("name", JOB_PAGES)
def test_ada_opens_her_import(name: str, ada_client: Client, ada_job: ImportJob) -> None:
    response = ada_client.get(reverse(f"crm_imports:{name}", args=[ada_job.pk]))
    assert response.status_code == 200


@pytest.mark.parametrize("name", JOB_PAGES)
def test_charlie_of_another_organization_gets_404(
    name: str, charlie_client: Client, ada_job: ImportJob
) -> None:
    response = charlie_client.get(reverse(f"crm_imports:{name}", args=[ada_job.pk]))
    assert response.status_code == 404


@pytest.mark.parametrize("name", JOB_PAGES)
def test_bob_cannot_see_another_members_import(
    name: str, bob_client: Client, ada_job: ImportJob
) -> None:
    response = bob_client.get(reverse(f"crm_imports:{name}", args=[ada_job.pk]))
    assert response.status_code == 404


@pytest.mark.parametrize("persona", ["bob_client", "charlie_client"])
def test_others_cannot_run_adas_import(
    persona: str, request: pytest.FixtureRequest, ada_job: ImportJob
) -> None:
    response = request.getfixturevalue(persona).post(
        reverse("crm_imports:run", args=[ada_job.pk]), {}
    )
    assert response.status_code == 404
    ada_job.refresh_from_db()
    assert ada_job.status == ImportStatus.UPLOADED
    assert Lead.objects.count() == 0


def test_bob_imports_into_his_organization_and_ada_the_administrator_sees_it(
    bob_client: Client, ada_client: Client, bob: User, organization: Organization
) -> None:
    bob_client.post(
        START, {"module": "leads", "file": upload(csv_bytes([EN_HEADERS, *lead_rows(2)]))}
    )
    job = ImportJob.objects.get()
    bob_client.post(reverse("crm_imports:run", args=[job.pk]), {})
    assert Lead.objects.filter(organization=organization, created_by=bob).count() == 2
    assert ada_client.get(reverse("crm_imports:detail", args=[job.pk])).status_code == 200
    assert list(ada_client.get(START).context["jobs"]) == [job]


def test_charlie_imports_only_into_his_own_organization(
    charlie_client: Client, other_organization: Organization
) -> None:
    charlie_client.post(
        START, {"module": "leads", "file": upload(csv_bytes([EN_HEADERS, *lead_rows(1)]))}
    )
    job = ImportJob.objects.get()
    assert job.organization == other_organization
    charlie_client.post(reverse("crm_imports:run", args=[job.pk]), {})
    assert list(Lead.objects.values_list("organization", flat=True)) == [other_organization.pk]


def test_run_only_accepts_post(ada_client: Client, ada_job: ImportJob) -> None:
    assert ada_client.get(reverse("crm_imports:run", args=[ada_job.pk])).status_code == 405


def test_ada_discards_her_upload_and_its_rows_are_dropped(
    ada_client: Client, ada_job: ImportJob
) -> None:
    response = ada_client.post(reverse("crm_imports:discard", args=[ada_job.pk]))
    assert response.status_code == 302
    ada_job.refresh_from_db()
    assert (ada_job.status, ada_job.content) == (ImportStatus.DISCARDED, "")
    # A discarded file can no longer be imported.
    ada_client.post(reverse("crm_imports:run", args=[ada_job.pk]), {})
    assert Lead.objects.count() == 0
    assert ada_client.get(reverse("crm_imports:preview", args=[ada_job.pk])).status_code == 302


@pytest.mark.parametrize("persona", ["bob_client", "charlie_client"])
def test_others_cannot_discard_adas_upload(
    persona: str, request: pytest.FixtureRequest, ada_job: ImportJob
) -> None:
    response = request.getfixturevalue(persona).post(
        reverse("crm_imports:discard", args=[ada_job.pk])
    )
    assert response.status_code == 404
    ada_job.refresh_from_db()
    assert ada_job.status == ImportStatus.UPLOADED
    assert ada_job.content != ""


def test_a_finished_import_is_not_discarded(ada_client: Client, ada_job: ImportJob) -> None:
    ada_client.post(reverse("crm_imports:run", args=[ada_job.pk]), {})
    ada_client.post(reverse("crm_imports:discard", args=[ada_job.pk]))
    ada_job.refresh_from_db()
    assert (ada_job.status, ada_job.created_count) == (ImportStatus.DONE, 2)
    assert Lead.objects.count() == 2


def test_every_member_finds_import_and_export_in_the_crm_navigation(bob_client: Client) -> None:
    html = bob_client.get(reverse("crm:contact-list")).content.decode()
    assert f'<a href="{START}">Import and export</a>' in html
    html = bob_client.get(START).content.decode()
    assert f'<a href="{START}" aria-current="page">Import and export</a>' in html
