"""Issue 9.8: a message that can never be sent fails once, with its reason on the timeline.

A name with a line break (stored before names were checked at input) makes the To
header unbuildable (a ValueError from Django's address check; BadHeaderError for
other headers); a server that refuses a recipient with a 5xx
reply refuses it every time. Neither is retried.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from kizuna.crm.mail.models import OutgoingMessage
from kizuna.crm.mail.tests.conftest import queue_text_email
from kizuna.crm.models import Activity, ActivityKind, Lead, Organization
from kizuna.identity.models import User
from kizuna.testing.worker import run_worker
from kizuna.work.leases import WorkStatus

LINE_BREAK = "ValueError: Invalid address; address parts cannot contain newlines."


def _leads(organization: Organization) -> tuple[Lead, Lead]:
    good = Lead.objects.create(
        organization=organization, family_name="Good", email="good@example.com"
    )
    # Saved without validation, as rows written before the input check may be.
    bad = Lead.objects.create(
        organization=organization,
        family_name="X\r\nBcc: victim@example.com",
        email="bad@example.com",
    )
    return good, bad


def _run_again_later() -> None:
    """Make every pending row due, as if its retry time had come, and run the worker."""
    OutgoingMessage.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    run_worker()


def _assert_failed_once_with_reason(lead: Lead, reason: str) -> None:
    row = OutgoingMessage.objects.get(lead=lead)
    assert (row.status, row.attempts, row.sent_at) == (WorkStatus.FAILED, 1, None)
    assert row.last_error.startswith(reason), row.last_error
    assert list(
        Activity.objects.filter(lead=lead).order_by("pk").values_list("kind", flat=True)
    ) == [ActivityKind.EMAIL_QUEUED, ActivityKind.EMAIL_FAILED]
    failure = Activity.objects.get(lead=lead, kind=ActivityKind.EMAIL_FAILED)
    assert failure.data["error"] == row.last_error
    assert failure.summary.startswith(f"S ({reason}")


@pytest.mark.usefixtures("ada_membership")
def test_a_name_with_a_line_break_fails_for_good_over_smtp_and_the_others_are_sent(
    ada: User, organization: Organization, smtp
) -> None:
    good, bad = _leads(organization)
    queue_text_email(organization, ada, [good, bad])

    run_worker()
    _run_again_later()

    assert [received.envelope_to for received in smtp.messages] == [["good@example.com"]]
    assert OutgoingMessage.objects.get(lead=good).status == WorkStatus.DONE
    _assert_failed_once_with_reason(bad, LINE_BREAK)


@pytest.mark.usefixtures("ada_membership")
def test_a_name_with_a_line_break_fails_for_good_in_the_local_mailbox(
    ada: User, organization: Organization, local_mailbox
) -> None:
    good, bad = _leads(organization)
    queue_text_email(organization, ada, [good, bad])

    run_worker()
    _run_again_later()

    assert len(list(local_mailbox.glob("*.eml"))) == 1
    _assert_failed_once_with_reason(bad, LINE_BREAK)


@pytest.mark.usefixtures("ada_membership")
@pytest.mark.parametrize(
    "reply", ["550 5.1.1 No such user here", "553 5.1.3 Bad recipient address syntax"]
)
def test_a_recipient_the_server_refuses_with_5xx_fails_for_good(
    ada: User, organization: Organization, smtp, reply: str
) -> None:
    good, refused = _leads(organization)
    refused.family_name = "Refused"
    refused.save(update_fields=["family_name"])
    smtp.refuse_rcpt["bad@example.com"] = reply
    queue_text_email(organization, ada, [good, refused])

    run_worker()
    _run_again_later()

    assert [received.envelope_to for received in smtp.messages] == [["good@example.com"]]
    _assert_failed_once_with_reason(refused, reply)


@pytest.mark.usefixtures("ada_membership")
def test_a_recipient_the_server_refuses_with_4xx_is_retried(
    ada: User, organization: Organization, smtp
) -> None:
    lead = Lead.objects.create(organization=organization, family_name="Later", email="l@x.test")
    smtp.refuse_rcpt["l@x.test"] = "450 4.2.1 Mailbox busy, try later"
    queue_text_email(organization, ada, [lead])

    run_worker()
    row = OutgoingMessage.objects.get()
    assert (row.status, row.attempts) == (WorkStatus.PENDING, 1)

    del smtp.refuse_rcpt["l@x.test"]
    _run_again_later()

    row.refresh_from_db()
    assert (row.status, row.attempts) == (WorkStatus.DONE, 2)
    assert len(smtp.to("l@x.test")) == 1
