"""E2 and E3 in Chromium, in English and Japanese: "Insert survey link" in the template
editor, "Send survey" from a contact page with that template, the email through real SMTP
with the contact's own link, and that link opening the survey at the real Survey service."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from kizuna.crm.integration import services
from kizuna.crm.integration.client import Credentials
from kizuna.crm.integration.models import Connection, ConnectionMethod
from kizuna.crm.mail.models import EmailTemplate, SendBatch
from kizuna.crm.models import Contact, Organization
from kizuna.identity.models import User
from kizuna.survey.models import Invitation, Survey
from kizuna.testing.pages import sign_in, watch_for_errors
from kizuna.testing.smtp import MailServer
from kizuna.work import leases

pytestmark = pytest.mark.usefixtures("survey_service")

LINK = re.compile(r"(https?://[^\s\"<>]+/s/i/([A-Za-z0-9_\-]+)/)")
TEXTS = {
    "en-US": {"insert": "Insert survey link", "send": "Send survey", "save": "Save"},
    "ja-JP": {"insert": "アンケートのリンクを挿入", "send": "アンケートを送信", "save": "保存"},
}


@pytest.mark.usefixtures("ada_membership")
@pytest.mark.parametrize("locale", ["en-US", "ja-JP"])
def test_e3_e2_insert_a_survey_link_send_it_from_a_contact_and_open_it(
    live_server: Any,
    new_page: Callable[..., Any],
    organization: Organization,
    ada: User,
    ada_credentials: Credentials,
    ada_survey: Survey,
    smtp: MailServer,
    locale: str,
) -> None:
    texts = TEXTS[locale]
    connection: Connection = services.enable(
        organization=organization,
        by=ada,
        credentials=ada_credentials,
        method=ConnectionMethod.OTHER_ACCOUNT,
        uses_all_portals=True,
    )
    contact = Contact.objects.create(
        organization=organization,
        family_name="Hopper",
        given_name="Grace",
        email="grace@example.com",
    )
    page = new_page(locale)
    problems = watch_for_errors(page)
    sign_in(page, live_server, ada)

    # E3: the editor's button inserts the survey's placeholder at the cursor.
    page.goto(live_server.url + "/crm/mail/templates/new/?module=contacts")
    page.select_option("#id_module", "contacts")
    page.fill("#id_name", "Survey invitation")
    page.fill("#id_subject", "{{ contact.given_name }}, a question")
    page.fill("#id_body_text", "Please answer: ")
    page.focus("#id_body_text")
    page.evaluate("document.getElementById('id_body_text').setSelectionRange(15, 15)")
    button = page.locator('[data-extension="survey-link"] button')
    assert button.inner_text() == texts["insert"]
    button.click()
    assert page.input_value("#id_body_text") == f"Please answer: {{{{ survey.{ada_survey.pk} }}}}"
    page.click("main button.primary")
    page.wait_for_url("**/crm/mail/templates/*/")
    template = EmailTemplate.objects.get()

    # E2: "Send survey" on the contact's page, with that template.
    page.goto(f"{live_server.url}/crm/contacts/{contact.pk}/")
    page.get_by_role("link", name=texts["send"]).click()
    page.select_option("#id_survey", str(ada_survey.pk))
    page.select_option("#id_template", str(template.pk))
    page.click("main button.primary")
    page.wait_for_url("**/crm/mail/sent/*/")
    batch = SendBatch.objects.get()
    assert batch.template == template

    while leases.run_due_work(worker_id="test"):
        pass
    (message,) = smtp.received
    assert message["Subject"] == "Grace, a question"
    plain = message.get_body(("plain",))
    assert plain is not None
    body = plain.get_content()
    ((link, token),) = LINK.findall(body)
    invitation = Invitation.objects.get(token=token)
    assert invitation.recipient_reference == connection.recipient_reference(contact)

    # The recipient opens their own link: the survey, at the Survey service.
    respondent = new_page(locale)
    respondent.goto(link)
    assert "Customer satisfaction" in respondent.content()
    assert problems == []
