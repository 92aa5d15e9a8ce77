"""The setup wizard in Chromium: another user's account in English, my own account in
Japanese, then disabling; htmx swaps each step in place and the CSP holds (no console
errors)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from kizuna.crm.integration.client import Credentials
from kizuna.crm.integration.models import Connection, ConnectionMethod, ConnectionState
from kizuna.crm.models import Organization
from kizuna.identity.models import User
from kizuna.survey.models import SurveyAccount
from kizuna.testing.pages import sign_in, watch_for_errors

pytestmark = pytest.mark.usefixtures("survey_service", "ada_membership")


def test_s3_s9_another_users_account_in_english(
    live_server: Any,
    page: Page,
    ada: User,
    organization: Organization,
    carol_account: SurveyAccount,
    carol_credentials: Credentials,
) -> None:
    problems = watch_for_errors(page)
    sign_in(page, live_server, ada)
    page.goto(live_server.url + "/crm/settings/extensions/")
    page.locator("#main").get_by_role("link", name="Survey").click()
    page.locator("#get-started").click()

    page.get_by_label("Another user's Survey account (with its SC key)").check()
    page.locator("#setup-next").click()
    page.locator("#id_email").fill("carol@example.com")
    page.locator("#id_key").fill("sck_wrong")
    page.locator("#setup-next").click()
    expect(page.locator("#setup")).to_contain_text("This SC key is not the key of this email")
    page.locator("#id_key").fill(carol_credentials.key)
    page.locator("#setup-next").click()
    expect(page.locator("#setup-progress")).to_have_text("Step 3 of 5")
    page.locator("#setup-next").click()  # nothing chosen: S5
    expect(page.locator("#setup")).to_contain_text("choose at least one portal")
    page.locator("#setup-back").click()  # Back keeps what was entered
    expect(page.locator("#id_email")).to_have_value("carol@example.com")
    page.locator("#setup-next").click()
    page.get_by_label("Use all surveys of this account").check()
    page.locator("#setup-next").click()
    expect(page.locator("#survey-users")).to_contain_text("Not yet a Survey user")
    page.get_by_label("Add all CRM administrators to Survey").check()
    page.locator("#setup-next").click()
    expect(page.locator("#setup-summary")).to_contain_text("Carol's Research")
    page.locator("#setup-submit").click()

    expect(page.locator("#survey-integration")).to_contain_text("Enabled")
    expect(page.locator("#survey-integration")).to_contain_text("carol@example.com")
    connection = Connection.objects.get(organization=organization)
    assert connection.state == ConnectionState.ENABLED
    assert connection.survey_account_id == carol_account.pk
    assert problems == []


def test_s7_my_own_account_in_japanese_then_disabling(
    live_server: Any,
    new_page: Callable[..., Page],
    ada: User,
    organization: Organization,
    ada_account: SurveyAccount,
) -> None:
    page = new_page(locale="ja-JP")
    problems = watch_for_errors(page)
    sign_in(page, live_server, ada)
    page.goto(live_server.url + "/crm/integration/settings/")
    page.get_by_role("link", name="今すぐ開始").click()

    page.get_by_label("自分のSurveyアカウント").check()
    page.locator("#setup-next").click()
    page.get_by_role("button", name="自分のSurveyアカウントを検索").click()
    expect(page.locator("#setup-progress")).to_have_text("ステップ 3 / 5")
    expect(page.locator('input[name="portals"]:checked')).to_have_count(2)  # S7
    page.locator("#setup-next").click()
    page.get_by_label("CRMのすべての管理者").check()
    page.locator("#setup-next").click()
    page.locator("#setup-submit").click()

    expect(page.locator("#survey-integration")).to_contain_text("有効")
    connection = Connection.objects.get(organization=organization)
    assert connection.method == ConnectionMethod.OWN_ACCOUNT

    page.get_by_role("link", name="連携を無効にする").click()
    page.locator("#confirm-disable").click()
    expect(page.locator("#get-started")).to_be_visible()
    connection.refresh_from_db()
    assert connection.state == ConnectionState.DISABLED
    assert problems == []
