"""A sending thread's batch (issue 11 P3): one thread begins several messages, each on an SMTP
connection of its own, fences the batch's leases in one statement, sends the final dot
of each message it still holds, and marks the sent ones in one transaction. A message taken
over by another worker before its dot is never sent by this one; a refused message fails or
retries alone, and the rest of its batch is sent."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from kizuna.crm.mail import services
from kizuna.crm.mail.models import OutgoingMessage
from kizuna.crm.mail.tests.conftest import queue_text_email
from kizuna.crm.models import Activity, ActivityKind, Lead
from kizuna.work import leases
from kizuna.work.leases import WorkStatus

pytestmark = pytest.mark.usefixtures("ada_membership")


def claimed_batch(organization, ada, count: int) -> list[OutgoingMessage]:
    """`count` queued messages to r0@... r{count-1}@example.com, claimed by worker "w"."""
    leads = Lead.objects.bulk_create(
        Lead(organization=organization, family_name=f"F{number}", email=f"r{number}@example.com")
        for number in range(count)
    )
    queue_text_email(organization, ada, leads, subject="Hello {{ lead.family_name }}")
    rows = leases.claim(OutgoingMessage.objects.order_by("pk"), worker_id="w", limit=count)
    return sorted(rows, key=lambda row: row.pk)


def received(smtp) -> list[str]:
    return sorted(address for message in smtp.messages for address in message.envelope_to)


def sent_entries() -> list[str]:
    return sorted(
        Activity.objects.filter(kind=ActivityKind.EMAIL_SENT).values_list("data__to", flat=True)
    )


@pytest.mark.django_db(transaction=True)
def test_p3_a_message_taken_over_by_another_worker_after_its_begin_is_not_sent_and_the_others_are(
    ada, organization, smtp
):
    batch = claimed_batch(organization, ada, 4)
    taken = batch[2]

    def take_over(address: str) -> None:
        # Another worker claims the row while this one is between its RCPT TO and its dot
        # (its lease was taken for run out): a new attempt under another name.
        if address == taken.to_address:
            OutgoingMessage.objects.filter(pk=taken.pk).update(
                leased_by="other", attempts=F("attempts") + 1
            )

    smtp.on_recipient = take_over
    with CaptureQueriesContext(connection) as queries:
        services.send_outgoing_messages(batch)

    assert received(smtp) == ["r0@example.com", "r1@example.com", "r3@example.com"]
    rows = {row.pk: row for row in OutgoingMessage.objects.all()}
    assert [(rows[row.pk].status, rows[row.pk].leased_by) for row in batch] == [
        (WorkStatus.DONE, "w"),
        (WorkStatus.DONE, "w"),
        (WorkStatus.LEASED, "other"),
        (WorkStatus.DONE, "w"),
    ]
    assert sent_entries() == ["r0@example.com", "r1@example.com", "r3@example.com"]
    # One fence for the whole batch before the dots, one "sent" mark after them with its
    # timeline entries (on PostgreSQL in the same statement).
    assert outbox_statements(queries) == ["SELECT", *sent_marks()]


def outbox_statements(queries) -> list[str]:
    """The first word of each statement that read or wrote the outbox, or wrote anything."""
    table = OutgoingMessage._meta.db_table
    return [
        query["sql"].split()[0]
        for query in queries
        if query["sql"].startswith(("UPDATE", "INSERT", "WITH"))
        or (query["sql"].startswith("SELECT") and f'FROM "{table}"' in query["sql"])
    ]


def shorten_lease(message: OutgoingMessage) -> OutgoingMessage:
    """As if claimed long ago: less than half a lease left (in the row and in this object)."""
    message.leased_until = timezone.now() + timedelta(seconds=10)
    OutgoingMessage.objects.filter(pk=message.pk).update(leased_until=message.leased_until)
    return message


def sent_marks() -> list[str]:
    return ["WITH"] if connection.vendor == "postgresql" else ["UPDATE", "INSERT"]


@pytest.mark.django_db(transaction=True)
def test_p3_a_batch_claimed_moments_ago_is_fenced_by_reading_its_rows_not_writing_them(
    ada, organization, smtp
):
    batch = claimed_batch(organization, ada, 3)
    leased_until = {row.pk: row.leased_until for row in OutgoingMessage.objects.all()}

    with CaptureQueriesContext(connection) as queries:
        services.send_outgoing_messages(batch)

    assert received(smtp) == ["r0@example.com", "r1@example.com", "r2@example.com"]
    # Nothing written before the dots: the fence is a SELECT, the only writes the marks.
    assert outbox_statements(queries) == ["SELECT", *sent_marks()]
    table = OutgoingMessage._meta.db_table
    (fence,) = [
        query["sql"]
        for query in queries
        if query["sql"].startswith("SELECT") and f'FROM "{table}"' in query["sql"]
    ]
    assert "leased_by" in fence and "attempts" in fence
    assert all(leased_until.values())


@pytest.mark.django_db(transaction=True)
def test_p3_a_message_whose_lease_runs_short_is_renewed_before_its_dot_and_the_others_only_read(
    ada, organization, smtp
):
    batch = claimed_batch(organization, ada, 3)
    short = shorten_lease(batch[1])

    with CaptureQueriesContext(connection) as queries:
        services.send_outgoing_messages(batch)

    assert received(smtp) == ["r0@example.com", "r1@example.com", "r2@example.com"]
    assert outbox_statements(queries) == ["UPDATE", "SELECT", *sent_marks()]
    renewal = next(query["sql"] for query in queries if query["sql"].startswith("UPDATE"))
    assert "leased_until" in renewal and f"IN ({short.pk})" in renewal
    assert set(OutgoingMessage.objects.values_list("status", flat=True)) == {WorkStatus.DONE}


@pytest.mark.django_db(transaction=True)
def test_p3_a_message_taken_over_while_its_lease_ran_short_is_not_sent_and_the_others_are(
    ada, organization, smtp
):
    batch = claimed_batch(organization, ada, 3)
    short = shorten_lease(batch[0])

    def take_over(address: str) -> None:
        if address == short.to_address:
            OutgoingMessage.objects.filter(pk=short.pk).update(
                leased_by="other", attempts=F("attempts") + 1
            )

    smtp.on_recipient = take_over
    services.send_outgoing_messages(batch)

    assert received(smtp) == ["r1@example.com", "r2@example.com"]
    assert OutgoingMessage.objects.get(pk=short.pk).leased_by == "other"
    assert sent_entries() == ["r1@example.com", "r2@example.com"]


@pytest.mark.django_db(transaction=True)
def test_p3_in_a_batch_a_refusal_for_good_fails_a_refusal_for_now_retries_and_the_others_are_sent(
    ada, organization, smtp
):
    batch = claimed_batch(organization, ada, 5)
    smtp.refuse_rcpt["r1@example.com"] = "550 5.1.1 No such user here"
    smtp.refuse_rcpt["r2@example.com"] = "450 4.2.1 Mailbox busy, try later"
    smtp.refuse["r3@example.com"] = "554 5.7.1 Message refused by policy"

    services.send_outgoing_messages(batch)

    assert received(smtp) == ["r0@example.com", "r4@example.com"]
    rows = {row.pk: row for row in OutgoingMessage.objects.all()}
    assert [(rows[row.pk].status, rows[row.pk].attempts) for row in batch] == [
        (WorkStatus.DONE, 1),
        (WorkStatus.FAILED, 1),
        (WorkStatus.PENDING, 1),
        (WorkStatus.FAILED, 1),
        (WorkStatus.DONE, 1),
    ]
    assert [rows[row.pk].last_error for row in batch] == [
        "",
        "550 5.1.1 No such user here",
        "450 4.2.1 Mailbox busy, try later",
        "554 5.7.1 Message refused by policy",
        "",
    ]
    assert sent_entries() == ["r0@example.com", "r4@example.com"]
    failed = Activity.objects.filter(kind=ActivityKind.EMAIL_FAILED)
    assert sorted(failed.values_list("data__to", flat=True)) == [
        "r1@example.com",
        "r3@example.com",
    ]

    # The one refused for now is sent with its batch's next run; the connections are reused.
    del smtp.refuse_rcpt["r2@example.com"]
    retried = OutgoingMessage.objects.filter(pk=batch[2].pk)
    retried.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    (again,) = leases.claim(retried, worker_id="w")
    services.send_outgoing_messages([again])
    assert received(smtp) == ["r0@example.com", "r2@example.com", "r4@example.com"]
    assert OutgoingMessage.objects.get(pk=batch[2].pk).status == WorkStatus.DONE
