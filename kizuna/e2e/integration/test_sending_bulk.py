"""A survey sent to a whole list from the UI: every record the list's filters match (up to
10,000) is one send. The request prepares the first part of 1,000 (so a send that cannot
get working links is refused before any email leaves); the worker prepares the others in
parts of 1,000, one invitation API call each, while the batch page shows the progress.
Nobody gets the email twice, and a recipient the Survey service refuses is reported by
name with the reason while the others are sent. Real Survey over HTTP, real SMTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from django.test import Client
from django.urls import reverse

from kizuna.crm.integration.models import Connection, SurveyInvitation
from kizuna.crm.mail.models import OutgoingMessage, SendBatch
from kizuna.crm.models import Activity, ActivityKind, Contact, Organization
from kizuna.e2e.integration.mailing import CountingCalls, links_in, send_page, speak
from kizuna.e2e.integration.respond import answer, invite, run_worker
from kizuna.identity.models import User
from kizuna.survey.models import Invitation, Survey
from kizuna.testing.races import require_postgresql
from kizuna.testing.smtp import MailServer

pytestmark = pytest.mark.usefixtures("survey_service")

SELECTED = 5_000


def many_contacts(organization: Organization, count: int) -> list[Contact]:
    Contact.objects.bulk_create(
        [
            Contact(
                organization=organization,
                family_name=f"Family{i:05d}",
                given_name=f"Given{i:05d}",
                email=f"person{i:05d}@example.com",
            )
            for i in range(count)
        ],
        batch_size=1000,
    )
    return list(Contact.objects.filter(organization=organization).order_by("pk"))


def test_e2_five_thousand_contacts_matching_the_list_get_the_survey_once_each(
    organization: Organization,
    ada: User,
    ada_client: Client,
    connection: Connection,
    ada_survey: Survey,
    smtp: MailServer,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    # A thousand invitations in one call take seconds on a loaded test machine.
    settings.KIZUNA_SURVEY_TIMEOUT_SECONDS = 60.0
    calls = CountingCalls(monkeypatch)
    contacts = many_contacts(organization, SELECTED)
    listing = ada_client.get(reverse("crm:contact-list")).content.decode()
    all_matching = reverse("crm_survey_sending:send") + "?module=contacts&amp;match="
    assert f'href="{all_matching}">Send survey: all {SELECTED} matching records</a>' in listing

    opened = ada_client.get(reverse("crm_survey_sending:send"), {"module": "contacts", "match": ""})
    page = opened.content.decode()
    assert f"Send the survey to {SELECTED} recipients" in page
    assert f"And {SELECTED - 100} more recipients." in page
    ids = opened.context["ids"]
    assert ids == ",".join(str(contact.pk) for contact in contacts)

    response = send_page(ada_client, "contacts", contacts, survey=ada_survey.pk)

    batch = SendBatch.objects.get()
    assert response["Location"] == reverse("crm_mail:batch", args=[batch.pk])
    # The first part while Ada waited; the rest is background work, shown as such.
    assert calls.sizes == [1000]
    assert OutgoingMessage.objects.count() == 1000
    progress = ada_client.get(reverse("crm_mail:batch", args=[batch.pk])).content.decode()
    assert f'data-preparing="{SELECTED - 1000}"' in progress
    assert f"{SELECTED - 1000} more recipients" in progress

    run_worker()

    assert calls.sizes == [1000] * 5
    assert batch.progress().sent == SELECTED
    assert batch.progress().is_finished
    assert Invitation.objects.filter(survey=ada_survey).count() == SELECTED
    assert SurveyInvitation.objects.filter(organization=organization).count() == SELECTED
    addresses = [message["To"] for message in smtp.received]
    assert len(addresses) == SELECTED
    assert len(set(addresses)) == SELECTED


@pytest.mark.parametrize("language", ["en", "ja"])
def test_e2_recipients_the_survey_refuses_are_reported_by_name_and_the_others_are_sent(
    organization: Organization,
    ada: User,
    ada_client: Client,
    connection: Connection,
    ada_survey: Survey,
    smtp: MailServer,
    questions: Any,
    language: str,
) -> None:
    speak(ada, ada_client, language)
    fine = Contact.objects.create(
        organization=organization, family_name="Ok", given_name="Fine", email="fine@example.com"
    )
    # Imported data: an address the CRM stored but the Survey service does not take.
    broken = Contact.objects.create(
        organization=organization, family_name="Bad", given_name="Address", email="not-an-email"
    )
    answered = Contact.objects.create(
        organization=organization, family_name="Done", given_name="Already", email="done@ex.com"
    )
    answer(invite(connection, answered, ada_survey), {})

    send_page(ada_client, "contacts", [fine, broken, answered], survey=ada_survey.pk)
    run_worker()

    name = {"en": "Fine Ok", "ja": "Ok Fine"}[language]  # Japanese: family name first
    assert [message["To"] for message in smtp.received] == [f"{name} <fine@example.com>"]
    batch = SendBatch.objects.get()
    reasons = {
        "en": {
            broken.pk: "the Survey service does not accept the email address “not-an-email”",
            answered.pk: "already answered the survey “Customer satisfaction”",
        },
        "ja": {
            broken.pk: "Surveyサービスがメールアドレス「not-an-email」を受け付けません",
            answered.pk: "アンケート「Customer satisfaction」に回答済みです",
        },
    }[language]
    assert {item["id"]: item["detail"] for item in batch.skipped} == reasons
    assert batch.progress().sent == 1
    assert batch.progress().skipped == 2
    page = ada_client.get(reverse("crm_mail:batch", args=[batch.pk])).content.decode()
    for pk, why in reasons.items():
        assert f'<span data-refused="{pk}">{why}</span>' in page.replace("&#x27;", "'")
    skipped = Activity.objects.get(contact=broken, kind=ActivityKind.EMAIL_SKIPPED)
    assert skipped.summary == f"Customer satisfaction ({reasons[broken.pk]})"
    assert not Invitation.objects.filter(email="not-an-email").exists()
    assert OutgoingMessage.objects.filter(contact__in=[broken, answered]).count() == 0


@contextmanager
def survey_invitations_locked() -> Iterator[None]:
    """The Survey service's invitations table locked by another session, as a machine under
    load keeps it waiting: its POST /invitations blocks until the block ends (reads go on)."""
    from django.db import connection as database

    settings = database.settings_dict
    with psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        password=settings["PASSWORD"],
        host=settings["HOST"],
        port=settings["PORT"] or None,
    ) as holder:
        holder.execute(f"LOCK TABLE {Invitation._meta.db_table} IN SHARE MODE")
        yield
    # Leaving psycopg's block commits: the lock is gone.


def test_e2_a_survey_service_too_slow_for_the_first_part_leaves_it_to_the_worker_once(
    organization: Organization,
    ada_client: Client,
    connection: Connection,
    ada_survey: Survey,
    smtp: MailServer,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    """The first part's invitations take longer than KIZUNA_SURVEY_TIMEOUT_SECONDS: the
    sender is not refused and never sees the timeout; the batch page shows the links being
    made; the worker makes them, and each recipient gets one email with one link, although
    the Survey service went on with the call the CRM gave up on (issue #7)."""
    require_postgresql("locks a table of the Survey service's database")
    settings.KIZUNA_SURVEY_TIMEOUT_SECONDS = 2.0
    calls = CountingCalls(monkeypatch)
    contacts = many_contacts(organization, 30)

    with survey_invitations_locked():
        response = send_page(ada_client, "contacts", contacts, survey=ada_survey.pk)
        batch = SendBatch.objects.get()
        assert response.status_code == 302
        assert response["Location"] == reverse("crm_mail:batch", args=[batch.pk])
        assert calls.sizes == [30]  # the call that timed out
        assert not OutgoingMessage.objects.exists()
        progress = ada_client.get(reverse("crm_mail:batch", args=[batch.pk])).content.decode()
        assert 'data-preparing="30"' in progress
        assert "did not answer in time" not in progress

    # The Survey service finishes the call the CRM stopped waiting for.
    deadline = time.monotonic() + 60
    while Invitation.objects.filter(survey=ada_survey).count() < 30:
        assert time.monotonic() < deadline, "the Survey service never finished the call"
        time.sleep(0.1)
    settings.KIZUNA_SURVEY_TIMEOUT_SECONDS = 60.0
    run_worker()

    assert calls.sizes == [30, 30]
    assert batch.progress().sent == 30
    assert batch.progress().is_finished
    assert Invitation.objects.filter(survey=ada_survey).count() == 30
    assert SurveyInvitation.objects.filter(organization=organization).count() == 30
    addresses = sorted(message["To"] for message in smtp.received)
    assert len(addresses) == 30
    assert len(set(addresses)) == 30
    links = [link for message in smtp.received for link, _token in links_in(message)]
    assert len(links) == len(set(links)) == 30
