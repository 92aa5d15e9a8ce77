"""The "sent" marks of a group of messages (issue 11 P3): the group's sending threads
share one fenced UPDATE and one INSERT of timeline entries; a message another worker took
over meanwhile is not marked by this one, and the others of its group still are."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from kizuna.crm.mail import services
from kizuna.crm.mail.models import OutgoingMessage
from kizuna.crm.mail.tests.conftest import queue_text_email
from kizuna.crm.models import Activity, ActivityKind, Lead
from kizuna.testing.races import require_postgresql
from kizuna.testing.worker import run_worker
from kizuna.work import leases
from kizuna.work.leases import WorkStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def claimed(organization, ada) -> list[OutgoingMessage]:
    leads = Lead.objects.bulk_create(
        Lead(organization=organization, family_name=f"F{number}", email=f"r{number}@example.com")
        for number in range(3)
    )
    queue_text_email(organization, ada, leads, subject="Hello {{ lead.family_name }}")
    rows = leases.claim(OutgoingMessage.objects.order_by("pk"), worker_id="w", limit=3)
    return sorted(rows, key=lambda row: row.pk)


def sent_entries() -> list[tuple[int | None, str]]:
    return sorted(
        Activity.objects.filter(kind=ActivityKind.EMAIL_SENT).values_list("lead_id", "summary")
    )


def _at_once(messages: list[OutgoingMessage]) -> list[bool]:
    require_postgresql("the marks in one statement are PostgreSQL's")
    return services._mark_all_sent_at_once(messages)


# Both ways of marking a group sent: an UPDATE and an INSERT in the caller's transaction,
# and on PostgreSQL both in one statement committed by itself.
MARKS = [
    pytest.param(services._mark_all_sent, id="update-then-insert"),
    pytest.param(_at_once, id="one-statement"),
]


def test_p3_a_group_of_sent_marks_is_one_update_and_one_insert(claimed):
    with CaptureQueriesContext(connection) as queries:
        assert services._mark_all_sent(claimed) == [True, True, True]

    writes = [query["sql"].split()[0] for query in queries if "SAVEPOINT" not in query["sql"]]
    assert writes == ["UPDATE", "INSERT"]
    assert set(OutgoingMessage.objects.values_list("status", flat=True)) == {WorkStatus.DONE}
    assert sent_entries() == sorted((row.lead_id, row.subject) for row in claimed)


def test_p3_on_postgresql_a_group_of_sent_marks_is_one_statement(claimed):
    with CaptureQueriesContext(connection) as queries:
        assert _at_once(claimed) == [True, True, True]

    assert [query["sql"].split()[0] for query in queries] == ["WITH"]
    assert set(OutgoingMessage.objects.values_list("status", flat=True)) == {WorkStatus.DONE}
    assert sent_entries() == sorted((row.lead_id, row.subject) for row in claimed)


@pytest.mark.parametrize("mark", MARKS)
def test_p3_a_sent_mark_s_timeline_entry_names_the_batch_message_address_sender_and_time(
    claimed, ada, mark
):
    # The row's summary, or its subject when it has none, at most 500 characters.
    long_subject = "件名" * 400
    OutgoingMessage.objects.filter(pk=claimed[0].pk).update(summary="Survey: 満足度")
    OutgoingMessage.objects.filter(pk=claimed[1].pk).update(summary="", subject=long_subject)
    claimed[0].summary = "Survey: 満足度"
    claimed[1].summary, claimed[1].subject = "", long_subject

    assert mark(claimed) == [True, True, True]

    entries = Activity.objects.filter(kind=ActivityKind.EMAIL_SENT).order_by("lead_id")
    rows = {row.pk: OutgoingMessage.objects.get(pk=row.pk) for row in claimed}
    assert [
        (entry.organization_id, entry.lead_id, entry.contact_id, entry.summary, entry.actor_id)
        for entry in entries
    ] == [
        (row.organization_id, row.lead_id, None, summary, ada.pk)
        for row, summary in zip(
            claimed, ["Survey: 満足度", long_subject[:500], claimed[2].summary], strict=True
        )
    ]
    assert [entry.data for entry in entries] == [
        {"batch": row.batch_id, "message": row.pk, "to": row.to_address} for row in claimed
    ]
    assert [entry.created_at for entry in entries] == [rows[row.pk].sent_at for row in claimed]
    assert all(rows[row.pk].sent_at is not None for row in claimed)


@pytest.mark.parametrize("mark", MARKS)
def test_p3_a_message_taken_over_by_another_worker_is_not_marked_and_the_others_are(claimed, mark):
    taken = claimed[1]
    # Its lease ran out and another worker claimed it: a new attempt under another name.
    OutgoingMessage.objects.filter(pk=taken.pk).update(leased_by="other", attempts=2)

    assert mark(claimed) == [True, False, True]

    statuses = dict(OutgoingMessage.objects.values_list("pk", "status"))
    assert statuses == {
        claimed[0].pk: WorkStatus.DONE,
        taken.pk: WorkStatus.LEASED,
        claimed[2].pk: WorkStatus.DONE,
    }
    assert sent_entries() == sorted((row.lead_id, row.subject) for row in (claimed[0], claimed[2]))


def test_p3_renewing_a_group_s_leases_renews_the_rows_still_held_only(claimed):
    OutgoingMessage.objects.filter(pk=claimed[0].pk).update(leased_by="other", attempts=2)

    assert services._renew_leases(claimed) == [False, True, True]
    assert OutgoingMessage.objects.get(pk=claimed[0].pk).leased_by == "other"


def test_p3_on_postgresql_a_sending_thread_commits_without_waiting_for_the_disk(
    ada, organization, smtp
):
    """Its renewals and "sent" marks are seen by every other transaction at once (the
    fence); only a crash of the database server could lose the last ones, which sends
    those messages again with their Message-IDs, never loses one."""
    require_postgresql("synchronous_commit is PostgreSQL's")
    leads = Lead.objects.bulk_create(
        Lead(organization=organization, family_name=f"F{number}", email=f"r{number}@example.com")
        for number in range(2)
    )
    queue_text_email(organization, ada, leads)
    run_worker()

    assert sorted(message.envelope_to[0] for message in smtp.messages) == [
        "r0@example.com",
        "r1@example.com",
    ]
    assert set(OutgoingMessage.objects.values_list("status", flat=True)) == {WorkStatus.DONE}
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone() == ("off",)
