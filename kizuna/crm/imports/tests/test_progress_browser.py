"""The progress bar of a background import, in Chromium: htmx polls until the job is done."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import expect

from kizuna.crm.imports.models import ImportJob, ImportStatus
from kizuna.crm.models import Membership, Organization, Role
from kizuna.testing.personas import make_user


@pytest.mark.django_db(transaction=True)
def test_the_progress_bar_updates_itself_until_the_import_is_done(
    live_server: Any, page: Any
) -> None:
    organization = Organization.objects.create(name="Kizuna Demo")
    ada = make_user("ada@example.com", full_name="Ada Lovelace")
    Membership.objects.create(organization=organization, user=ada, role=Role.ADMINISTRATOR)
    job = ImportJob.objects.create(
        organization=organization,
        created_by=ada,
        module="leads",
        filename="big.csv",
        encoding="utf-8",
        content="x",
        row_count=4000,
        processed=1000,
        status=ImportStatus.RUNNING,
    )
    client = Client()
    client.force_login(ada)
    page.context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": live_server.url,
            }
        ]
    )
    errors: list[str] = []
    page.on(
        "response", lambda response: errors.append(response.url) if response.status >= 400 else None
    )
    page.goto(f"{live_server.url}/crm/imports/{job.pk}/")
    assert page.locator("#import-bar").get_attribute("value") == "25"
    ImportJob.objects.filter(pk=job.pk).update(processed=3000)
    expect(page.locator("#import-bar")).to_have_attribute("value", "75")
    ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.DONE, created_count=4000)
    expect(page.locator("#import-result")).to_be_visible()
    assert (
        page.locator("#import-result").inner_text()
        == "4000 records created in Leads; 0 rows skipped."
    )
    assert page.locator("#import-progress").get_attribute("hx-trigger") is None
    assert errors == []
