"""What the sender reads about a sent survey email: the sent-mail list, the send's page and
the record's timeline show the survey link by the survey's name, in the sender's language,
never as a raw placeholder and never as the recipient's own link (which answers as them)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from kizuna.crm.integration.models import Connection
from kizuna.crm.integration.sending import services as sending
from kizuna.crm.mail.models import SendBatch
from kizuna.crm.models import Activity, ActivityKind, Organization
from kizuna.e2e.integration.mailing import links_in, make_contacts, speak
from kizuna.e2e.integration.respond import run_worker
from kizuna.identity.models import User
from kizuna.survey.models import Survey
from kizuna.testing.smtp import MailServer

pytestmark = pytest.mark.usefixtures("survey_service")

SURVEY_LINK = {"en": "Survey link", "ja": "アンケートのリンク"}
GIVEN_NAME = {"en": "Given name", "ja": "名"}


@pytest.mark.parametrize("language", ["en", "ja"])
def test_e2_the_sent_mail_list_the_send_page_and_the_timeline_name_the_survey_sent(
    organization: Organization,
    ada: User,
    ada_client: Client,
    connection: Connection,
    ada_survey: Survey,
    smtp: MailServer,
    language: str,
) -> None:
    speak(ada, ada_client, language)
    (contact,) = make_contacts(organization, 1)
    link = sending.placeholder(ada_survey.pk)
    response = ada_client.post(
        reverse("crm_mail:compose"),
        {
            "module": "contacts",
            "ids": str(contact.pk),
            "subject": f"Your opinion: {link}",
            "body_text": f"Hello {{{{ contact.given_name }}}}, answer here: {link}",
        },
    )
    batch = SendBatch.objects.get()
    assert response.status_code == 302
    run_worker()

    # The recipient saw their own link, in the subject and in the body.
    (message,) = smtp.received
    ((own_link, token),) = links_in(message)
    assert message["Subject"] == f"Your opinion: {own_link}"
    described = f"[{SURVEY_LINK[language]}: Customer satisfaction]"

    listed = ada_client.get(reverse("crm_mail:batches")).content.decode()
    assert f"<td>Your opinion: {described}</td>" in listed
    page = ada_client.get(reverse("crm_mail:batch", args=[batch.pk])).content.decode()
    assert f"<h1>Your opinion: {described}</h1>" in page
    assert f"Hello [{GIVEN_NAME[language]}], answer here: {described}" in page
    timeline = ada_client.get(reverse("crm:contact-detail", args=[contact.pk])).content.decode()
    summaries = set(
        Activity.objects.filter(contact=contact).values_list("kind", "summary").distinct()
    )
    assert summaries == {
        (ActivityKind.EMAIL_QUEUED, f"Your opinion: {described}"),
        (ActivityKind.EMAIL_SENT, f"Your opinion: {described}"),
    }
    assert f"Your opinion: {described}" in timeline
    for shown in (listed, page, timeline):
        assert f"survey.{ada_survey.pk}" not in shown
        assert token not in shown


def test_a_survey_link_never_sent_is_described_without_a_name(
    organization: Organization, ada_survey: Survey, connection: Connection
) -> None:
    batch: Any = SendBatch(organization=organization, module="contacts")
    batch.subject = f"Soon: {sending.placeholder(ada_survey.pk)} and {{{{ survey.x }}}}"
    assert batch.readable_subject() == "Soon: [Survey link] and [survey.x]"
