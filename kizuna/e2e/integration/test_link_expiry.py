"""Survey links sent by CRM mail are bounded: "Send survey" asks how many days they work
(1 to 365, 30 offered), and a link inserted with "Insert survey link" in the compose form
or a template works for 30 days from sending, as the editor says. Past its expiry, the
real Survey service refuses the link (410)."""

from __future__ import annotations

import datetime

import httpx
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kizuna.crm.integration.models import Connection, SurveyInvitation
from kizuna.crm.integration.sending import services as sending
from kizuna.crm.mail.models import OutgoingMessage, SendBatch
from kizuna.crm.models import Organization
from kizuna.e2e.integration.mailing import links_in, make_contacts, send_page, speak
from kizuna.e2e.integration.respond import run_worker
from kizuna.identity.models import User
from kizuna.survey.models import Invitation, Survey
from kizuna.testing.smtp import MailServer

pytestmark = pytest.mark.usefixtures("survey_service")

HELP = {
    "en": "Each recipient gets a survey link of their own; it works for 30 days from sending, "
    "or until the survey is closed.",
    "ja": "受信者ごとに専用のアンケートのリンクが作られます。リンクは送信から30日間、"
    "またはアンケートの受付終了まで有効です。",
}
REQUIRED = {"en": "This field is required.", "ja": "このフィールドは必須です。"}
AT_MOST = {
    "en": "Ensure this value is less than or equal to 365.",
    "ja": "この値は 365 以下でなければなりません。",
}


def days_left(moment: datetime.datetime | None) -> float:
    assert moment is not None
    return (moment - timezone.now()) / datetime.timedelta(days=1)


@pytest.mark.parametrize("language", ["en", "ja"])
def test_e3_the_compose_form_says_how_long_an_inserted_survey_link_works(
    organization: Organization,
    ada: User,
    ada_client: Client,
    connection: Connection,
    ada_survey: Survey,
    language: str,
) -> None:
    speak(ada, ada_client, language)
    (contact,) = make_contacts(organization, 1)
    page = ada_client.get(
        reverse("crm_mail:compose"), {"module": "contacts", "ids": str(contact.pk)}
    ).content.decode()
    assert f'<small class="help" data-extension-help="survey-link">{HELP[language]}</small>' in (
        page
    )


def test_e3_a_link_inserted_in_the_compose_form_expires_30_days_after_sending(
    organization: Organization,
    ada_client: Client,
    connection: Connection,
    ada_survey: Survey,
    smtp: MailServer,
) -> None:
    (contact,) = make_contacts(organization, 1)
    ada_client.post(
        reverse("crm_mail:compose"),
        {
            "module": "contacts",
            "ids": str(contact.pk),
            "subject": "Your opinion",
            "body_text": f"Answer here: {sending.placeholder(ada_survey.pk)}",
        },
    )
    run_worker()

    ((link, token),) = links_in(smtp.received[0])
    invitation = Invitation.objects.get(token=token)
    assert 29.9 < days_left(invitation.expires_at) <= 30
    # The CRM's copy says the same (the API gives the time to the millisecond).
    assert invitation.expires_at is not None
    kept = SurveyInvitation.objects.get(contact=contact).expires_at
    assert kept == invitation.expires_at.replace(
        microsecond=invitation.expires_at.microsecond // 1000 * 1000
    )
    assert httpx.get(link).status_code == 200
    # The bound holds at the Survey service: once past, the link answers as nobody.
    Invitation.objects.filter(pk=invitation.pk).update(
        expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    assert httpx.get(link).status_code == 410


def test_e2_send_survey_links_work_for_the_days_chosen(
    organization: Organization,
    ada_client: Client,
    connection: Connection,
    ada_survey: Survey,
    smtp: MailServer,
) -> None:
    (contact,) = make_contacts(organization, 1)
    send_page(ada_client, "contacts", [contact], survey=ada_survey.pk, expiry_days="3")
    run_worker()
    ((_link, token),) = links_in(smtp.received[0])
    assert 2.9 < days_left(Invitation.objects.get(token=token).expires_at) <= 3


@pytest.mark.parametrize("language", ["en", "ja"])
@pytest.mark.parametrize(("days", "error"), [("", REQUIRED), ("366", AT_MOST), ("0", None)])
def test_e2_send_survey_refuses_links_that_never_expire_or_outlive_a_year(
    organization: Organization,
    ada: User,
    ada_client: Client,
    connection: Connection,
    ada_survey: Survey,
    smtp: MailServer,
    language: str,
    days: str,
    error: dict[str, str] | None,
) -> None:
    speak(ada, ada_client, language)
    (contact,) = make_contacts(organization, 1)
    response = send_page(ada_client, "contacts", [contact], survey=ada_survey.pk, expiry_days=days)
    assert response.status_code == 200
    if error is not None:
        assert error[language] in response.content.decode()
    run_worker()
    assert SendBatch.objects.count() == 0
    assert OutgoingMessage.objects.count() == 0
    assert Invitation.objects.count() == 0
    assert smtp.received == []
