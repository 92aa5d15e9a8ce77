"""The progress bar of a background import, in Chromium: htmx polls until the job is done."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from kizuna.crm.imports.models import ImportJob, ImportStatus
from kizuna.crm.models import Organization
from kizuna.identity.models import User
from kizuna.testing.csvfiles import JA_HEADERS, csv_bytes
from kizuna.testing.pages import sign_in, watch_for_errors


@pytest.mark.usefixtures("ada_membership")
@pytest.mark.django_db(transaction=True)
def test_the_progress_bar_updates_itself_until_the_import_is_done(
    live_server: Any, page: Any, ada: User, running_job: ImportJob
) -> None:
    job = running_job
    sign_in(page, live_server, ada)
    errors = watch_for_errors(page)
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


@pytest.mark.usefixtures("ada_membership")
@pytest.mark.django_db(transaction=True)
def test_a_japanese_user_imports_a_shift_jis_file_in_chromium(
    live_server: Any, new_page: Any, organization: Organization, ada: User
) -> None:
    ada.language = "ja"
    ada.save(update_fields=["language"])
    page = new_page("ja-JP")
    sign_in(page, live_server, ada)
    failures = watch_for_errors(page)
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
