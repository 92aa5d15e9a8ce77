"""Sending surveys from the CRM (E2, E3, D3, K2's refused sends), end to end: the CRM's pages
and worker, the real Survey service over HTTP (live_server), real SMTP (mail_server).

Every recipient gets a link of their own (/s/i/<token>/) whose recipient reference names
this connection and the record; invitations are made per part of up to 1,000 recipients
in one API call, and a send that cannot get working links is refused before any email
leaves, with the reason in the sender's language.
"""

from __future__ import annotations

import datetime
from typing import Any

import httpx
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kizuna.crm.integration import client, services
from kizuna.crm.integration.client import Credentials
from kizuna.crm.integration.models import (
    Connection,
    ConnectionState,
    SurveyInvitation,
    parse_recipient_reference,
)
from kizuna.crm.integration.sending import services as sending
from kizuna.crm.mail import services as mail_services
from kizuna.crm.mail.models import BatchPreparation, EmailTemplate, OutgoingMessage, SendBatch
from kizuna.crm.models import Contact, Lead, Organization
from kizuna.e2e.integration.mailing import (
    CountingCalls,
    links_in,
    make_contacts,
    send_page,
    speak,
    survey_part,
)
from kizuna.e2e.integration.respond import enable, run_worker
from kizuna.identity.models import User
from kizuna.survey.keys.services import regenerate_key
from kizuna.survey.models import AccountMember, Invitation, Portal, Survey, SurveyAccount
from kizuna.testing.receiver import Answer, Receiver
from kizuna.testing.smtp import MailServer, free_port
from kizuna.work.leases import WorkStatus

pytestmark = pytest.mark.usefixtures("survey_service")

# E3: "Insert survey link" ------------------------------------------------------------------


def test_e3_the_editor_offers_the_open_surveys_of_the_chosen_portals(
    organization: Organization,
    ada: User,
    ada_client: Client,
    ada_credentials: Credentials,
    ada_portals: list[Portal],
) -> None:
    events, other = ada_portals
    wanted = Survey.objects.create(portal=events, title="Event feedback", created_by=ada)
    also = Survey.objects.create(portal=events, title="Event follow-up", created_by=ada)
    Survey.objects.create(portal=events, title="Closed one", is_open=False, created_by=ada)
    Survey.objects.create(portal=other, title="Other portal", created_by=ada)
    enable(
        organization,
        ada,
        ada_credentials,
        uses_all_portals=False,
        portals=[client.Portal(id=events.pk, name=events.name)],
    )

    for url in (
        reverse("crm_mail:template-create") + "?module=contacts",
        reverse("crm_mail:compose")
        + f"?module=contacts&ids={make_contacts(organization, 1)[0].pk}",
    ):
        page = ada_client.get(url).content.decode()
        assert 'data-extension="survey-link"' in page
        assert f'<option value="{{{{ survey.{wanted.pk} }}}}">Event feedback</option>' in page
        assert f'<option value="{{{{ survey.{also.pk} }}}}">Event follow-up</option>' in page
        assert "Closed one" not in page
        assert "Other portal" not in page


def test_d3_the_insert_button_disappears_when_the_integration_is_disabled_and_templates_stay(
    organization: Organization,
    ada: User,
    ada_client: Client,
    connection: Connection,
    ada_survey: Survey,
) -> None:
    template = EmailTemplate.objects.create(
        organization=organization,
        module="contacts",
        name="Survey",
        subject="Your opinion",
        body_text=f"Answer: {sending.placeholder(ada_survey.pk)}",
    )
    editor = reverse("crm_mail:template-edit", args=[template.pk])
    assert 'data-extension="survey-link"' in ada_client.get(editor).content.decode()

    services.disable(organization=organization, by=ada)

    page = ada_client.get(editor).content.decode()
    assert 'data-extension="survey-link"' not in page
    assert "Insert survey link" not in page
    template.refresh_from_db()
    assert template.body_text == f"Answer: {{{{ survey.{ada_survey.pk} }}}}"


# E2: sending -------------------------------------------------------------------------------


def test_e2_sending_from_a_contact_gives_each_recipient_a_working_link_of_their_own(
    organization: Organization,
    ada: User,
    ada_client: Client,
    connection: Connection,
    ada_survey: Survey,
    smtp: MailServer,
    live_server: Any,
) -> None:
    contacts = make_contacts(organization, 3)
    page = ada_client.get(reverse("crm:contact-detail", args=[contacts[0].pk])).content.decode()
    assert reverse("crm_survey_sending:send") + f"?module=contacts&amp;ids={contacts[0].pk}" in page

    response = send_page(
        ada_client, "contacts", contacts, survey=ada_survey.pk, template="", expiry_days="10"
    )

    batch = SendBatch.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("crm_mail:batch", args=[batch.pk])
    run_worker()
    assert batch.progress().sent == 3
    tokens = set()
    for i, contact in enumerate(contacts):
        (message,) = [m for m in smtp.received if f"person{i}@example.com" in m["To"]]
        ((link, token),) = links_in(message)
        tokens.add(token)
        invitation = Invitation.objects.get(token=token)
        assert invitation.survey_id == ada_survey.pk
        assert invitation.recipient_reference == connection.recipient_reference(contact)
        assert parse_recipient_reference(invitation.recipient_reference) == (
            connection.reference_key,
            "contact",
            contact.pk,
        )
        assert invitation.expires_at is not None
        assert invitation.expires_at - timezone.now() > datetime.timedelta(days=9)
        # The CRM keeps its copy, on the record.
        kept = SurveyInvitation.objects.get(contact=contact)
        assert (kept.survey_token, kept.link, kept.survey_title) == (
            token,
            link,
            "Customer satisfaction",
        )
        assert link == f"{live_server.url}/s/i/{token}/"
        assert httpx.get(link, follow_redirects=True).status_code == 200
    assert len(tokens) == 3


def test_e2_the_send_form_asks_the_survey_service_for_its_surveys_once_per_request(
    organization: Organization,
    ada_client: Client,
    connection: Connection,
    ada_survey: Survey,
    smtp: MailServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The form lists the surveys; sending checks the chosen one against that same list."""
    listed: list[str] = []
    original = client.list_surveys

    def counting(credentials: Credentials, **options: Any) -> list[client.SurveyInfo]:
        listed.append(credentials.email)
        return original(credentials, **options)

    monkeypatch.setattr(client, "list_surveys", counting)
    (contact,) = make_contacts(organization, 1)

    form = ada_client.get(
        reverse("crm_survey_sending:send"), {"module": "contacts", "ids": str(contact.pk)}
    )
    assert (form.status_code, len(listed)) == (200, 1)
    sent = send_page(ada_client, "contacts", [contact], survey=ada_survey.pk, template="")
    assert (sent.status_code, len(listed)) == (302, 2)
    run_worker()
    assert len(smtp.received) == 1
    assert len(listed) == 2  # the one part was prepared in the request


def test_e2_a_template_is_sent_with_its_survey_links_pointing_at_the_chosen_survey(
    organization: Organization,
    ada: User,
    ada_client: Client,
    connection: Connection,
    ada_survey: Survey,
    ada_portals: list[Portal],
    smtp: MailServer,
) -> None:
    other = Survey.objects.create(portal=ada_portals[0], title="Other", created_by=ada)
    template = EmailTemplate.objects.create(
        organization=organization,
        module="leads",
        name="Ask",
        subject="Tell us, {{ lead.given_name }}",
        body_text=f"Here: {sending.placeholder(other.pk)}",
    )
    lead = Lead.objects.create(
        organization=organization, family_name="Doe", given_name="Jo", email="jo@example.com"
    )
    send_page(ada_client, "leads", [lead], survey=ada_survey.pk, template=template.pk)
    run_worker()
    (message,) = smtp.received
    assert message["Subject"] == "Tell us, Jo"
    ((_link, token),) = links_in(message)
    assert Invitation.objects.get(token=token).survey_id == ada_survey.pk
    assert SendBatch.objects.get().template == template


def test_e2_the_list_selection_opens_send_survey_and_sends_with_one_api_call(
    organization: Organization,
    ada: User,
    ada_client: Client,
    connection: Connection,
    ada_survey: Survey,
    smtp: MailServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = CountingCalls(monkeypatch)
    contacts = make_contacts(organization, 25)
    opened = ada_client.post(
        reverse("crm_survey_sending:send"),
        {"module": "contacts", "bulk_action": "send_survey", "ids": [c.pk for c in contacts]},
    )
    assert opened.status_code == 200
    assert "Send the survey to 25 recipients" in opened.content.decode()
    assert SendBatch.objects.count() == 0

    send_page(ada_client, "contacts", contacts, survey=ada_survey.pk)
    run_worker()

    assert calls.sizes == [25]
    assert len(smtp.received) == 25
    assert Invitation.objects.filter(survey=ada_survey).count() == 25
    assert SurveyInvitation.objects.filter(organization=organization).count() == 25


@pytest.mark.usefixtures("ada_membership")
def test_e2_a_bulk_send_makes_invitations_per_part_never_per_recipient_and_resumes_after_an_outage(
    organization: Organization,
    ada: User,
    connection: Connection,
    ada_survey: Survey,
    smtp: MailServer,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    monkeypatch.setattr(mail_services, "PREPARE_PART_SIZE", 2)
    calls = CountingCalls(monkeypatch)
    contacts = make_contacts(organization, 5)
    survey_url = settings.SURVEY_URL

    batch = sending.send_survey(
        organization=organization,
        sender=ada,
        module="contacts",
        records=contacts,
        survey=client.SurveyInfo(
            ada_survey.pk, ada_survey.portal_id, "Customer satisfaction", True, ""
        ),
        template=None,
        expires_at=None,
    )
    settings.SURVEY_URL = f"http://127.0.0.1:{free_port()}"  # the Survey service goes down
    run_worker()

    # The first part went out; nobody of the others got an email without a link.
    assert sorted(m["To"] for m in smtp.received) == [
        "Given0 Family0 <person0@example.com>",
        "Given1 Family1 <person1@example.com>",
    ]
    preparation = BatchPreparation.objects.get()
    assert preparation.status == WorkStatus.PENDING
    assert "cannot be reached" in preparation.last_error
    # True while the part is retried (the first part went out): not "nothing was sent".
    assert preparation.last_error.startswith(
        "Survey links could not be made, so the emails waiting for them have not been sent: "
    )
    assert batch.progress().preparing == 3

    settings.SURVEY_URL = survey_url
    BatchPreparation.objects.update(next_attempt_at=timezone.now())
    run_worker()

    assert calls.sizes == [2, 2, 1]  # the call that could not reach the service made nothing
    assert len(smtp.received) == 5
    tokens = {links_in(message)[0][1] for message in smtp.received}
    assert len(tokens) == 5
    assert Invitation.objects.filter(survey=ada_survey).count() == 5


@pytest.mark.usefixtures("ada_membership")
def test_e2_a_retried_part_creates_no_invitation_twice(
    organization: Organization, ada: User, connection: Connection, ada_survey: Survey
) -> None:
    contacts = make_contacts(organization, 3)
    context = survey_part(organization, ada, ada_survey)
    first = sending.prepare_survey_links(context, contacts)
    again = sending.prepare_survey_links(context, contacts)

    assert first == again
    assert Invitation.objects.filter(survey=ada_survey).count() == 3
    assert SurveyInvitation.objects.count() == 3


@pytest.mark.usefixtures("ada_membership", "charlie_membership")
def test_e2_two_organizations_on_one_survey_account_get_references_of_their_own(
    organization: Organization,
    other_organization: Organization,
    ada: User,
    charlie: User,
    ada_credentials: Credentials,
    ada_survey: Survey,
) -> None:
    ours = enable(organization, ada, ada_credentials)
    theirs = enable(other_organization, charlie, ada_credentials)
    contact = make_contacts(organization, 1)[0]
    other_contact = Contact.objects.create(
        organization=other_organization, family_name="Sato", email="sato@example.jp"
    )
    for org, record, sender in (
        (organization, contact, ada),
        (other_organization, other_contact, charlie),
    ):
        sending.prepare_survey_links(
            survey_part(org, sender, ada_survey),
            [record],
        )
    references = set(Invitation.objects.values_list("recipient_reference", flat=True))
    assert references == {
        ours.recipient_reference(contact),
        theirs.recipient_reference(other_contact),
    }
    assert SurveyInvitation.objects.get(organization=organization).contact == contact
    assert SurveyInvitation.objects.get(organization=other_organization).contact == other_contact


# Refused sends -----------------------------------------------------------------------------


def compose(ada_client: Client, record: Contact, body: str) -> Any:
    return ada_client.post(
        reverse("crm_mail:compose"),
        {"module": "contacts", "ids": str(record.pk), "subject": "S", "body_text": body},
    )


def assert_nothing_sent(smtp: MailServer) -> None:
    run_worker()
    assert SendBatch.objects.count() == 0
    assert OutgoingMessage.objects.count() == 0
    assert smtp.received == []


REFUSALS = {
    "closed": {
        "en": "The survey “Customer satisfaction” is closed and accepts no responses",
        "ja": "アンケート「Customer satisfaction」は受付を終了していて回答を受け付けない",
    },
    "foreign": {
        "en": "is not a survey of the portals the Survey integration uses",
        "ja": "Survey連携で使うポータルのアンケートではありません",
    },
    "disabled": {
        "en": "The Survey integration is disabled, so survey links cannot be sent.",
        "ja": "Survey連携が無効になっているため、アンケートのリンクを送信できません。",
    },
    "server_error": {
        "en": "The Survey service had an internal error.",
        "ja": "Surveyサービスで内部エラーが発生しました。",
    },
    "timeout": {
        "en": "The Survey service did not answer in time.",
        "ja": "Surveyサービスが時間内に応答しませんでした。",
    },
    "revoked": {
        "en": "This SC key was regenerated in Survey and no longer works.",
        "ja": "このSCキーはSurveyで再生成されたため、使用できなくなりました。",
    },
    "reconnect": {
        "en": "The Survey integration needs to be reconnected",
        "ja": "Survey連携の再接続が必要です",
    },
}


@pytest.mark.parametrize("language", ["en", "ja"])
def test_e2_a_closed_survey_is_refused_before_any_email_leaves(
    organization: Organization,
    ada: User,
    ada_client: Client,
    connection: Connection,
    ada_survey: Survey,
    smtp: MailServer,
    language: str,
) -> None:
    speak(ada, ada_client, language)
    ada_survey.is_open = False
    ada_survey.save(update_fields=["is_open"])
    contact = make_contacts(organization, 1)[0]
    response = compose(ada_client, contact, f"Go: {sending.placeholder(ada_survey.pk)}")
    assert response.status_code == 200
    assert REFUSALS["closed"][language] in response.content.decode()
    assert_nothing_sent(smtp)
    assert Invitation.objects.count() == 0


@pytest.mark.parametrize("language", ["en", "ja"])
def test_e2_a_survey_id_of_another_account_is_refused(
    organization: Organization,
    ada: User,
    ada_client: Client,
    connection: Connection,
    carol_account: SurveyAccount,
    carol: User,
    smtp: MailServer,
    language: str,
) -> None:
    speak(ada, ada_client, language)
    portal = Portal.objects.create(account=carol_account, name="Research")
    carols = Survey.objects.create(portal=portal, title="Carol's survey", created_by=carol)
    contact = make_contacts(organization, 1)[0]
    response = compose(ada_client, contact, f"Go: {sending.placeholder(carols.pk)}")
    assert REFUSALS["foreign"][language] in response.content.decode()
    assert_nothing_sent(smtp)
    assert Invitation.objects.filter(survey=carols).count() == 0


@pytest.mark.parametrize("language", ["en", "ja"])
def test_d3_a_template_with_survey_links_is_refused_once_the_integration_is_disabled(
    organization: Organization,
    ada: User,
    ada_client: Client,
    connection: Connection,
    ada_survey: Survey,
    smtp: MailServer,
    language: str,
) -> None:
    speak(ada, ada_client, language)
    services.disable(organization=organization, by=ada)
    contact = make_contacts(organization, 1)[0]
    response = compose(ada_client, contact, f"Go: {sending.placeholder(ada_survey.pk)}")
    assert REFUSALS["disabled"][language] in response.content.decode()
    assert_nothing_sent(smtp)
    page = ada_client.get(reverse("crm:contact-detail", args=[contact.pk])).content.decode()
    assert reverse("crm_survey_sending:send") not in page


@pytest.mark.parametrize("language", ["en", "ja"])
@pytest.mark.parametrize(
    ("answer", "refusal"),
    [(Answer(status=500, body=b"boom"), "server_error"), (Answer(delay_seconds=3), "timeout")],
)
def test_e2_a_survey_service_that_fails_or_hangs_refuses_the_send(
    organization: Organization,
    ada: User,
    ada_client: Client,
    connection: Connection,
    ada_survey: Survey,
    smtp: MailServer,
    receiver: Receiver,
    settings: Any,
    answer: Answer,
    refusal: str,
    language: str,
) -> None:
    speak(ada, ada_client, language)
    receiver.default = answer
    settings.SURVEY_URL = receiver.origin
    settings.KIZUNA_SURVEY_TIMEOUT_SECONDS = 1.0
    contact = make_contacts(organization, 1)[0]
    response = compose(ada_client, contact, f"Go: {sending.placeholder(ada_survey.pk)}")
    assert REFUSALS[refusal][language] in response.content.decode()
    assert_nothing_sent(smtp)
    connection.refresh_from_db()
    assert connection.state == ConnectionState.ENABLED


@pytest.mark.parametrize("language", ["en", "ja"])
def test_k2_send_refused_while_the_key_is_regenerated_and_works_after_reconnecting(
    organization: Organization,
    ada: User,
    ada_client: Client,
    connection: Connection,
    ada_survey: Survey,
    ada_member: AccountMember,
    smtp: MailServer,
    language: str,
) -> None:
    speak(ada, ada_client, language)
    new_key = regenerate_key(member=ada_member, by=ada_member.user).reveal()
    contact = make_contacts(organization, 1)[0]

    first = compose(ada_client, contact, f"Go: {sending.placeholder(ada_survey.pk)}")
    assert REFUSALS["revoked"][language] in first.content.decode()
    connection.refresh_from_db()
    assert connection.state == ConnectionState.NEEDS_RECONNECTION
    again = send_page(ada_client, "contacts", [contact], survey=ada_survey.pk)
    assert REFUSALS["reconnect"][language] in again.content.decode()
    assert_nothing_sent(smtp)

    services.reconnect(organization=organization, by=ada, key=new_key)
    sent = compose(ada_client, contact, f"Go: {sending.placeholder(ada_survey.pk)}")
    assert sent.status_code == 302
    run_worker()
    (message,) = smtp.received
    assert len(links_in(message)) == 1


@pytest.mark.usefixtures("ada_membership")
def test_k2_a_bulk_send_waits_for_reconnection_and_resumes_without_mailing_anyone_a_dead_link(
    organization: Organization,
    ada: User,
    connection: Connection,
    ada_survey: Survey,
    ada_member: AccountMember,
    smtp: MailServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mail_services, "PREPARE_PART_SIZE", 2)
    contacts = make_contacts(organization, 4)
    batch = sending.send_survey(
        organization=organization,
        sender=ada,
        module="contacts",
        records=contacts,
        survey=client.SurveyInfo(
            ada_survey.pk, ada_survey.portal_id, "Customer satisfaction", True, ""
        ),
        template=None,
        expires_at=None,
    )
    new_key = regenerate_key(member=ada_member, by=ada_member.user).reveal()
    run_worker()

    # The first part had its links before the key changed; the rest waits for a new key.
    assert len(smtp.received) == 2
    connection.refresh_from_db()
    assert connection.state == ConnectionState.NEEDS_RECONNECTION
    preparation = BatchPreparation.objects.get()
    assert preparation.status == WorkStatus.PENDING
    assert REFUSALS["revoked"]["en"] in preparation.last_error
    BatchPreparation.objects.update(next_attempt_at=timezone.now())
    run_worker()
    assert REFUSALS["reconnect"]["en"] in BatchPreparation.objects.get().last_error
    assert len(smtp.received) == 2

    services.reconnect(organization=organization, by=ada, key=new_key)
    BatchPreparation.objects.update(next_attempt_at=timezone.now())
    run_worker()

    assert len(smtp.received) == 4
    assert all(len(links_in(message)) == 1 for message in smtp.received)
    assert SendBatch.objects.get(pk=batch.pk).progress().sent == 4


def test_e2_send_survey_needs_a_record_of_the_organization(
    organization: Organization,
    other_organization: Organization,
    ada_client: Client,
    connection: Connection,
    ada_survey: Survey,
) -> None:
    stranger = Contact.objects.create(organization=other_organization, family_name="X")
    response = ada_client.get(
        reverse("crm_survey_sending:send") + f"?module=contacts&ids={stranger.pk}"
    )
    assert response.status_code == 404
