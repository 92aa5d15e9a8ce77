"""Bulk send through a real SMTP server (aiosmtpd on loopback), the outbox and the timeline."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from kizuna.crm.mail import services
from kizuna.crm.mail.models import OutgoingMessage, SendBatch
from kizuna.crm.mail.tests.conftest import queue_text_email
from kizuna.crm.models import Activity, ActivityKind, Lead
from kizuna.testing.worker import run_worker
from kizuna.work import leases
from kizuna.work.leases import WorkStatus

BASE = "https://crm.example.test"


def make_leads(organization, count: int, **fields) -> list[Lead]:
    return [
        Lead.objects.create(
            organization=organization,
            family_name=f"Family{i}",
            given_name=f"Given{i}",
            company=f"Company {i} & Sons",
            email=f"lead{i}@example.com",
            **fields,
        )
        for i in range(count)
    ]


@override_settings(KIZUNA_BASE_URL=BASE)
def test_bulk_send_gives_each_recipient_their_own_message_with_rfc8058_headers(
    ada, ada_client, organization, smtp
):
    leads = make_leads(organization, 3)
    response = ada_client.post(
        reverse("crm_mail:compose"),
        {
            "module": "leads",
            "ids": ",".join(str(lead.pk) for lead in leads),
            "subject": "Hello {{ lead.given_name }} from {{ sender.name }}",
            "body_html": "<p>Dear {{ lead.full_name }} of {{ lead.company }}</p>",
            "body_text": "",
        },
    )
    batch = SendBatch.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("crm_mail:batch", args=[batch.pk])
    assert smtp.messages == []  # nothing is sent in the request: the worker sends

    run_worker()

    assert len(smtp.messages) == 3
    for i, lead in enumerate(leads):
        (received,) = smtp.to(f"lead{i}@example.com")
        row = OutgoingMessage.objects.get(lead=lead)
        assert received["Subject"] == f"Hello Given{i} from Ada Lovelace"
        assert received["To"] == f"Given{i} Family{i} <lead{i}@example.com>"
        assert received["Reply-To"] == "ada@example.com"
        assert received["Message-ID"] == row.message_id
        url = f"{BASE}/crm/mail/unsubscribe/{row.unsubscribe_token}/"
        # Folded onto its own line when long (RFC 5322); unfolding leaves the leading space.
        assert received["List-Unsubscribe"].strip() == f"<{url}>"
        assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        # SMTP carries CRLF line ends; compare with Python's \n.
        html = received.get_body(("html",)).get_content().replace("\r\n", "\n")
        text = received.get_body(("plain",)).get_content().replace("\r\n", "\n")
        assert html.startswith(f"<p>Dear Given{i} Family{i} of Company {i} &amp; Sons</p>\n<hr>\n")
        assert f'<a href="{url}">Unsubscribe</a>' in html
        assert text == (
            f"Dear Given{i} Family{i} of Company {i} & Sons\n\n-- \n"
            "You receive this email from Kizuna Demo. To stop receiving emails, unsubscribe:\n"
            f"{url}\n"
        )
        assert row.status == WorkStatus.DONE
        assert row.sent_at is not None
        assert list(
            Activity.objects.filter(lead=lead).order_by("pk").values_list("kind", "summary")
        ) == [
            (ActivityKind.EMAIL_QUEUED, f"Hello Given{i} from Ada Lovelace"),
            (ActivityKind.EMAIL_SENT, f"Hello Given{i} from Ada Lovelace"),
        ]
    progress = batch.progress()
    assert (progress.total, progress.sent, progress.failed, progress.skipped) == (3, 3, 0, 0)
    assert progress.is_finished


def test_opted_out_and_addressless_records_are_skipped_and_reported(
    ada, ada_client, organization, smtp
):
    (kept,) = make_leads(organization, 1)
    opted_out = Lead.objects.create(
        organization=organization, family_name="Out", email="out@example.com", email_opt_out=True
    )
    no_email = Lead.objects.create(organization=organization, family_name="Nomail")
    ids = f"{kept.pk},{opted_out.pk},{no_email.pk}"

    page = ada_client.get(reverse("crm_mail:compose") + f"?module=leads&ids={ids}")
    assert page.status_code == 200
    assert "Opted out: skipped" in page.content.decode()
    assert "Send to 1 recipient" in page.content.decode()

    ada_client.post(
        reverse("crm_mail:compose"),
        {"module": "leads", "ids": ids, "subject": "News", "body_text": "Hi"},
    )
    run_worker()

    assert [r.envelope_to for r in smtp.messages] == [["lead0@example.com"]]
    batch = SendBatch.objects.get()
    assert batch.total == 3
    assert batch.skipped == [
        {"id": opted_out.pk, "name": "Out", "reason": "opted_out"},
        {"id": no_email.pk, "name": "Nomail", "reason": "no_email"},
    ]
    assert OutgoingMessage.objects.filter(lead__in=[opted_out, no_email]).count() == 0
    assert list(Activity.objects.filter(lead=opted_out).values_list("kind", "summary", "data")) == [
        (
            ActivityKind.EMAIL_SKIPPED,
            "News (opted out of email)",
            {"batch": batch.pk, "reason": "opted_out"},
        )
    ]
    progress = batch.progress()
    assert (progress.sent, progress.skipped, progress.waiting) == (1, 2, 0)
    summary = ada_client.get(reverse("crm_mail:batch", args=[batch.pk])).content.decode()
    assert "Out: opted out of email" in summary
    assert "Nomail: no email address" in summary


@pytest.mark.usefixtures("ada_membership")
def test_a_refused_recipient_fails_with_the_reason_on_the_timeline(ada, organization, smtp):
    good, bad = make_leads(organization, 2)
    smtp.refuse["lead1@example.com"] = "550 5.1.1 Mailbox unavailable"
    queue_text_email(organization, ada, [good, bad])
    run_worker()

    assert [r.envelope_to for r in smtp.messages] == [["lead0@example.com"]]
    failed = OutgoingMessage.objects.get(lead=bad)
    assert failed.status == WorkStatus.FAILED
    assert failed.last_error == "550 5.1.1 Mailbox unavailable"
    assert failed.sent_at is None
    kinds = list(Activity.objects.filter(lead=bad).order_by("pk").values_list("kind", flat=True))
    assert kinds == [ActivityKind.EMAIL_QUEUED, ActivityKind.EMAIL_FAILED]
    failure = Activity.objects.get(lead=bad, kind=ActivityKind.EMAIL_FAILED)
    assert failure.summary == "S (550 5.1.1 Mailbox unavailable)"
    assert failure.data["error"] == "550 5.1.1 Mailbox unavailable"


@pytest.mark.usefixtures("ada_membership")
def test_a_temporary_refusal_is_retried_later_with_the_same_message_id(ada, organization, smtp):
    (lead,) = make_leads(organization, 1)
    smtp.refuse["lead0@example.com"] = "451 4.3.0 Try again later"
    queue_text_email(organization, ada, [lead])
    run_worker()
    row = OutgoingMessage.objects.get()
    assert (row.status, row.attempts, row.last_error) == (
        WorkStatus.PENDING,
        1,
        "451 4.3.0 Try again later",
    )
    assert not Activity.objects.filter(lead=lead, kind=ActivityKind.EMAIL_SENT).exists()

    del smtp.refuse["lead0@example.com"]
    OutgoingMessage.objects.update(next_attempt_at=row.next_attempt_at.replace(year=2000))
    run_worker()
    (received,) = smtp.to("lead0@example.com")
    row.refresh_from_db()
    assert row.status == WorkStatus.DONE
    assert received["Message-ID"] == row.message_id


@pytest.mark.usefixtures("ada_membership")
def test_a_worker_that_lost_its_lease_does_not_send(ada, organization, smtp):
    (lead,) = make_leads(organization, 1)
    queue_text_email(organization, ada, [lead])
    (slow,) = leases.claim(OutgoingMessage.objects.all(), worker_id="slow")
    # The slow worker's lease ran out and another worker took the row over.
    OutgoingMessage.objects.update(leased_until=timezone.now() - timedelta(seconds=1))
    (fast,) = leases.claim(OutgoingMessage.objects.all(), worker_id="fast")

    services.send_outgoing_message(slow)
    assert smtp.messages == []
    services.send_outgoing_message(fast)
    assert len(smtp.to("lead0@example.com")) == 1
    row = OutgoingMessage.objects.get()
    assert (row.status, row.leased_by) == (WorkStatus.DONE, "fast")
    assert Activity.objects.filter(lead=lead, kind=ActivityKind.EMAIL_SENT).count() == 1


@pytest.mark.usefixtures("ada_membership")
def test_without_smtp_settings_mail_goes_to_the_local_mailbox(ada, organization, local_mailbox):
    (lead,) = make_leads(organization, 1)
    queue_text_email(organization, ada, [lead], subject="Hi {{ lead.family_name }}")
    run_worker()
    (path,) = local_mailbox.glob("*.eml")
    assert b"Subject: Hi Family0" in path.read_bytes()
    assert OutgoingMessage.objects.get().status == WorkStatus.DONE


@pytest.mark.usefixtures("ada_membership")
def test_a_recipient_with_a_japanese_name_gets_family_name_first_and_a_japanese_footer(
    ada, organization, lead, smtp
):
    queue_text_email(
        organization, ada, [lead], subject="{{ lead.full_name }}様", body_text="{{ lead.company }}"
    )
    run_worker()
    (received,) = smtp.to("taro@example.jp")
    row = OutgoingMessage.objects.get()
    assert received["Subject"].strip() == "山田 太郎様"
    assert received["To"] == "山田 太郎 <taro@example.jp>"
    text = received.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text == (
        "山田商事\n\n-- \n"
        "このメールはKizuna Demoから送信されています。"
        "今後の受信を希望されない場合は、配信を停止してください:\n"
        f"{settings.KIZUNA_BASE_URL}/crm/mail/unsubscribe/{row.unsubscribe_token}/\n"
    )


@pytest.mark.usefixtures("ada_membership")
def test_a_connection_the_server_closed_meanwhile_is_reopened(ada, organization):
    from aiosmtpd.controller import Controller

    from kizuna.crm.mail.tests.conftest import Inbox
    from kizuna.testing.processes import free_port

    inbox, port = Inbox(), free_port()
    first, second = make_leads(organization, 2)
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with override_settings(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=port,
        ):
            for lead in (first, second):
                queue_text_email(organization, ada, [lead])
                run_worker()
                if lead is first:
                    # The server restarts: the connection kept open for the next message is dead.
                    controller.stop()
                    controller = Controller(inbox, hostname="127.0.0.1", port=port)
                    controller.start()
    finally:
        controller.stop()
    assert [r.envelope_to for r in inbox.messages] == [
        ["lead0@example.com"],
        ["lead1@example.com"],
    ]
    assert set(OutgoingMessage.objects.values_list("status", flat=True)) == {WorkStatus.DONE}
    assert set(OutgoingMessage.objects.values_list("attempts", flat=True)) == {1}
