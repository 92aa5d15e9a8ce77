"""The progress bar of a background import, in Chromium: htmx polls until the job is done."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import expect

from kizuna.crm.imports.models import ImportJob, ImportStatus
from kizuna.crm.imports.tests.csvfiles import JA_HEADERS, csv_bytes
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


@pytest.mark.django_db(transaction=True)
def test_a_japanese_user_imports_a_shift_jis_file_in_chromium(
    live_server: Any, new_page: Any
) -> None:
    organization = Organization.objects.create(name="Kizuna Demo")
    ada = make_user("ada@example.com", full_name="Ada Lovelace", language="ja")
    Membership.objects.create(organization=organization, user=ada, role=Role.ADMINISTRATOR)
    page = new_page("ja-JP")
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
    failures: list[str] = []
    page.on(
        "response",
        lambda response: failures.append(response.url) if response.status >= 400 else None,
    )
    page.on(
        "console",
        # CSP violations are console errors; failed loads are checked by status above
        # (the browser's own /favicon.ico request is not one of the page's).
        lambda message: (
            failures.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None
        ),
    )
    rows = [
        JA_HEADERS,
        ["山田", "太郎", "キズナ", "taro@example.jp", "", "", "紹介", "新規"],
        ["佐藤", "花子", "キズナ", "bad@", "", "", "", ""],
    ]
    page.goto(f"{live_server.url}/crm/imports/")
    page.set_input_files(
        "input[type=file]",
        files=[
            {
                "name": "リード.csv",
                "mimeType": "text/csv",
                "buffer": csv_bytes(rows, encoding="cp932"),
            }
        ],
    )
    page.get_by_role("button", name="アップロードして列を対応付け").click()
    expect(page.get_by_role("heading", name="列の対応付け")).to_be_visible()
    page.get_by_role("button", name="ファイルを確認").click()
    expect(page.locator("#count-errors")).to_have_text("1")
    expect(page.get_by_text("有効なメールアドレスを入力してください。")).to_be_visible()
    page.get_by_label("エラーのある行をスキップして、残りをインポートする").check()
    page.get_by_role("button", name="インポート", exact=True).click()
    expect(page.locator("#import-result")).to_contain_text("1件作成しました")
    assert list(organization_leads(organization)) == [("山田", "taro@example.jp", "referral")]
    assert failures == []


def organization_leads(organization: Organization) -> Any:
    from kizuna.crm.models import Lead

    return Lead.objects.filter(organization=organization).values_list(
        "family_name", "email", "lead_source"
    )
