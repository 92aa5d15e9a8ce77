"""The whole Survey integration in Chromium, as its users see it, in English and Japanese
(issue #7, Tests, third bullet): Ada switches the language in the header, sets the
integration up in the wizard with each method in each language (another user's account,
Carol's, with its SC key; her own account), inserts a survey link into a template with the
editor's button and sends it from two contact pages. Grace opens her email in the local
mailbox (/mailbox/), answers, and Ada sees the answers in the Survey section of Grace's
page. Ada disables the integration: the section and the button are gone, the template is
kept and listed. Linus then answers through the link he received before: the Survey
results have his response, the CRM does not.

Everything is real: the Survey service at pytest-django's live server over HTTP, the worker
that sends the mail and delivers the Survey's webhooks to the CRM's intake, the mailbox.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from kizuna.crm.integration.client import Credentials
from kizuna.crm.integration.models import (
    Connection,
    ConnectionMethod,
    ConnectionState,
    SurveyInvitation,
    SurveyResponse,
)
from kizuna.crm.mail import transport
from kizuna.crm.mail.models import EmailTemplate
from kizuna.crm.models import Contact, Organization
from kizuna.e2e.integration.respond import run_worker
from kizuna.identity.models import User
from kizuna.survey.models import Question, Survey, SurveyAccount
from kizuna.testing.pages import sign_in, watch_for_errors
from kizuna.testing.personas import make_user

pytestmark = pytest.mark.usefixtures("survey_service", "ada_membership")

# Steps that wait for the Survey service, on a loaded machine (Playwright's default is 5 s).
SLOW = 20_000

# What a user reads in each language; the browser starts in the other one.
TEXTS = {
    "en": {
        "browser": "ja-JP",
        "locale": "en-US",
        "enabled": "Enabled",
        "insert": "Insert survey link",
        "send": "Send survey",
        "disable": "Disable the integration",
        "thanks": "Thank you!",
        "responded": "Responded",
        # The survey, written in the language of its public pages.
        "title": "Customer satisfaction",
        "how": "How was it?",
        "good": "Good",
        "bad": "Bad",
        "else": "Anything else?",
    },
    "ja": {
        "browser": "en-US",
        "locale": "ja-JP",
        "enabled": "有効",
        "insert": "アンケートのリンクを挿入",
        "send": "アンケートを送信",
        "disable": "連携を無効にする",
        "thanks": "ありがとうございました",
        "responded": "回答済み",
        "title": "顧客満足度",
        "how": "いかがでしたか?",
        "good": "良い",
        "bad": "悪い",
        "else": "ほかにご意見は?",
    },
}


@pytest.fixture
def local_mailbox(settings: Any, tmp_path: Path) -> Iterator[Path]:
    """Mail goes to the local mailbox, read at /mailbox/ (no SMTP server configured)."""
    settings.EMAIL_BACKEND = "kizuna.identity.mailbox.MailboxBackend"
    settings.KIZUNA_MAILBOX_DIR = tmp_path / "mailbox"
    transport.reset()
    try:
        yield settings.KIZUNA_MAILBOX_DIR
    finally:
        transport.reset()


def switch_language(page: Page, language: str) -> None:
    """The language switcher in the header, as a user uses it."""
    page.select_option("#language-select", language)
    page.locator("form.language button[type=submit]").click()
    expect(page.locator("html")).to_have_attribute("lang", language)


def set_up_with_another_users_account(page: Page, credentials: Credentials) -> None:
    """S3, S4, S5, S9 (the wizard's refusals are in test_setup_browser.py)."""
    page.locator('input[name="method"][value="other_account"]').check()
    page.locator("#setup-next").click()
    page.locator("#id_email").fill(credentials.email)
    page.locator("#id_key").fill(credentials.key)
    page.locator("#setup-next").click()
    page.locator("#id_use_all").check()
    page.locator("#setup-next").click()
    expect(page.locator("#survey-users")).to_be_visible()
    page.locator("#setup-next").click()
    page.locator("#setup-submit").click()


def set_up_with_my_own_account(page: Page) -> None:
    """S3, S7, S8, S9."""
    page.locator('input[name="method"][value="own_account"]').check()
    page.locator("#setup-next").click()
    expect(page.locator('input[name="action"][value="lookup"]')).to_be_attached()
    page.locator("#setup-next").click()  # "Find my Survey account"
    # S7: both of Ada's portals, found at the Survey service
    expect(page.locator('input[name="portals"]:checked')).to_have_count(2, timeout=SLOW)
    page.locator("#setup-next").click()
    page.locator('input[name="who"][value="all"]').check()
    page.locator("#setup-next").click()
    page.locator("#setup-submit").click()


def send_survey(page: Page, base: str, contact: Contact, survey: Survey, send: str) -> None:
    """E2: "Send survey" on the contact's page, with the template of the survey link."""
    template = EmailTemplate.objects.get()
    page.goto(f"{base}/crm/contacts/{contact.pk}/")
    page.get_by_role("link", name=send).click()
    page.select_option("#id_survey", str(survey.pk))
    page.select_option("#id_template", str(template.pk))
    page.click("main button.primary")
    page.wait_for_url("**/crm/mail/sent/*/")


def answer_from_the_mailbox(
    page: Page, base: str, subject: str, questions: dict[str, Question], text: str
) -> None:
    """The recipient opens the email in /mailbox/, follows their link and answers."""
    page.goto(base + "/mailbox/")
    page.get_by_role("link", name=subject).click()
    page.locator('pre.mail-text a[href*="/s/i/"]').click()
    page.locator(f'#question-{questions["choice"].pk} input[value="good"]').check()
    page.locator(f"#q{questions['text'].pk}").fill(text)
    page.locator('button[name="action"][value="submit"]').click()


@pytest.mark.parametrize(
    ("language", "method"),
    [
        ("en", ConnectionMethod.OTHER_ACCOUNT),
        ("ja", ConnectionMethod.OWN_ACCOUNT),
        ("en", ConnectionMethod.OWN_ACCOUNT),
        ("ja", ConnectionMethod.OTHER_ACCOUNT),
    ],
    ids=[
        "en-another-users-account",
        "ja-my-own-account",
        "en-my-own-account",
        "ja-another-users-account",
    ],
)
def test_s3_to_d6_whole_flow_in_the_browser(
    live_server: Any,
    new_page: Callable[..., Page],
    organization: Organization,
    ada: User,
    ada_account: SurveyAccount,
    carol: User,
    carol_account: SurveyAccount,
    carol_credentials: Credentials,
    local_mailbox: Path,
    language: str,
    method: ConnectionMethod,
) -> None:
    texts = TEXTS[language]
    base = live_server.url
    # Another user's account: Carol's, through her SC key; my own account: Ada's.
    is_other = method == ConnectionMethod.OTHER_ACCOUNT
    owner, account = (carol, carol_account) if is_other else (ada, ada_account)
    survey = Survey.objects.create(
        portal=account.portals.order_by("id")[0],
        title=texts["title"],
        language=language,
        created_by=owner,
    )
    questions = {
        "choice": Question.objects.create(
            survey=survey,
            kind="single_choice",
            text=texts["how"],
            options={
                "choices": [
                    {"key": "good", "label": texts["good"]},
                    {"key": "bad", "label": texts["bad"]},
                ]
            },
            position=0,
        ),
        "text": Question.objects.create(
            survey=survey, kind="long_text", text=texts["else"], options={}, position=1
        ),
    }
    grace = Contact.objects.create(
        organization=organization,
        family_name="Hopper",
        given_name="Grace",
        email="grace@example.com",
    )
    linus = Contact.objects.create(
        organization=organization,
        family_name="Pauling",
        given_name="Linus",
        email="linus@example.com",
    )

    page = new_page(texts["browser"])
    problems = watch_for_errors(page)
    sign_in(page, live_server, ada)
    page.goto(base + "/crm/")
    switch_language(page, language)

    # S3-S9: the wizard, from Settings > Extensions & APIs > Survey.
    page.goto(base + "/crm/integration/settings/")
    page.locator("#get-started").click()
    if is_other:
        set_up_with_another_users_account(page, carol_credentials)
    else:
        set_up_with_my_own_account(page)
    expect(page.locator("#survey-integration")).to_contain_text(texts["enabled"], timeout=SLOW)
    connection = Connection.objects.get(organization=organization)
    assert connection.method == method
    assert connection.survey_account_id == account.pk

    # E3: "Insert survey link" puts the survey's placeholder at the cursor.
    page.goto(base + "/crm/mail/templates/new/?module=contacts")
    page.select_option("#id_module", "contacts")
    page.fill("#id_name", "Survey invitation")
    page.fill("#id_subject", "{{ contact.given_name }}, a question")
    page.fill("#id_body_text", "Please answer: ")
    page.focus("#id_body_text")
    page.evaluate("document.getElementById('id_body_text').setSelectionRange(15, 15)")
    page.locator('[data-extension="survey-link"] button', has_text=texts["insert"]).click()
    body = f"Please answer: {{{{ survey.{survey.pk} }}}}"
    expect(page.locator("#id_body_text")).to_have_value(body)
    page.click("main button.primary")
    page.wait_for_url("**/crm/mail/templates/*/")
    template = EmailTemplate.objects.get()

    # E2: sent to Grace and to Linus from their pages; the worker mails them.
    send_survey(page, base, grace, survey, texts["send"])
    send_survey(page, base, linus, survey, texts["send"])
    run_worker()

    # E4: Grace answers from her mailbox; the Survey's webhook reaches the CRM.
    recipient = new_page(texts["locale"])
    sign_in(recipient, live_server, make_user("grace@example.com"))
    answer_from_the_mailbox(recipient, base, "Grace, a question", questions, "Kind people.")
    expect(recipient.locator(".notice-done")).to_contain_text(texts["thanks"], timeout=SLOW)
    run_worker()

    # E1: the response with its answers on Grace's page.
    page.goto(f"{base}/crm/contacts/{grace.pk}/")
    section = page.locator("#survey-section")
    expect(section.locator(".survey-invitations")).to_contain_text(texts["responded"])
    expect(section.locator(".survey-answers")).to_contain_text(texts["how"])
    expect(section.locator(".survey-answers")).to_contain_text(texts["good"])
    expect(section.locator(".survey-answers")).to_contain_text("Kind people.")

    # D1-D4: disabling, confirmed; the template is kept and listed.
    page.goto(base + "/crm/integration/settings/")
    page.locator("#survey-integration").get_by_role("link", name=texts["disable"]).click()
    expect(page.locator("#linked-templates")).to_contain_text("Survey invitation")
    page.locator("#confirm-disable").click()
    expect(page.locator("#get-started")).to_be_visible(timeout=SLOW)
    expect(page.locator("#linked-templates")).to_contain_text("Survey invitation")
    connection.refresh_from_db()
    assert connection.state == ConnectionState.DISABLED
    page.goto(f"{base}/crm/contacts/{grace.pk}/")
    expect(page.locator("h1")).to_contain_text("Grace")
    expect(page.locator("#survey-section")).to_have_count(0)
    page.goto(f"{base}/crm/mail/templates/{template.pk}/edit/")
    expect(page.locator("#id_body_text")).to_have_value(body)
    expect(page.locator('[data-extension="survey-link"]')).to_have_count(0)
    template.refresh_from_db()
    assert template.body_text == body

    # D5, D6: Linus answers through the link sent before; Survey keeps it, the CRM does not.
    recipient = new_page(texts["locale"])
    sign_in(recipient, live_server, make_user("linus@example.com"))
    answer_from_the_mailbox(recipient, base, "Linus, a question", questions, "Late.")
    expect(recipient.locator(".notice-done")).to_contain_text(texts["thanks"], timeout=SLOW)
    run_worker()

    results = page if owner == ada else new_page(texts["locale"])
    if owner != ada:
        sign_in(results, live_server, owner)
    results.goto(f"{base}/survey/results/{survey.pk}/responses/")
    rows = results.locator("main table.table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="Linus")).to_have_count(1)
    expect(rows.filter(has_text="Grace")).to_have_count(1)

    recorded = SurveyResponse.objects.filter(organization=organization)
    assert [response.contact_id for response in recorded] == [grace.pk]
    assert SurveyInvitation.objects.get(contact=linus).completed_at is None
    assert problems == []
