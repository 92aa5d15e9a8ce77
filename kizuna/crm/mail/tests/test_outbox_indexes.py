"""The outbox and the timeline keep only the indexes a query reads (issue 11, P3).

Each message of a send writes its outbox row three times (queued, leased, sent) and two
timeline rows: every index of those tables costs an entry on each write.
"""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.urls import reverse

from kizuna.crm.mail.models import OutgoingMessage
from kizuna.crm.mail.tests.conftest import queue_text_email
from kizuna.crm.models import Activity, Lead
from kizuna.testing.races import require_postgresql


def indexes_of(table: str) -> list[tuple[list[str], bool]]:
    """(columns, unique) of every index of the table, its primary key's included."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    return [
        (info["columns"], bool(info["unique"]))
        for info in constraints.values()
        if info["index"] or info["unique"] or info["primary_key"]
    ]


def test_p3_the_outbox_has_one_index_for_message_id_and_one_for_unsubscribe_token_both_unique(
    db: None,
) -> None:
    indexes = indexes_of(OutgoingMessage._meta.db_table)
    assert [unique for columns, unique in indexes if columns == ["message_id"]] == [True]
    assert [unique for columns, unique in indexes if columns == ["unsubscribe_token"]] == [True]


def test_p3_on_postgresql_the_outbox_has_no_pattern_ops_copy_of_an_index(db: None) -> None:
    require_postgresql("varchar_pattern_ops is a PostgreSQL index class")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexdef LIKE %s",
            [OutgoingMessage._meta.db_table, "%pattern_ops%"],
        )
        assert cursor.fetchall() == []


def test_p3_the_outbox_has_no_batch_index_beside_the_batch_and_status_one(db: None) -> None:
    indexes = indexes_of(OutgoingMessage._meta.db_table)
    assert ["batch_id"] not in [columns for columns, unique in indexes]
    assert ["batch_id", "status"] in [columns for columns, unique in indexes]


def test_p3_the_timeline_indexes_lead_and_contact_only_with_their_time(db: None) -> None:
    columns = [columns for columns, unique in indexes_of(Activity._meta.db_table)]
    assert ["lead_id"] not in columns
    assert ["contact_id"] not in columns
    assert ["lead_id", "created_at"] in columns
    assert ["contact_id", "created_at"] in columns


def a_copy_of(message: OutgoingMessage, **changes: str) -> None:
    """Insert another row like `message` (new token and Message-ID unless given)."""
    values = {
        field.attname: getattr(message, field.attname)
        for field in OutgoingMessage._meta.concrete_fields
        if not field.primary_key
    }
    values.update(message_id="<other@example.com>", unsubscribe_token="other-token")
    values.update(changes)
    OutgoingMessage.objects.create(**values)


@pytest.mark.usefixtures("ada_membership")
def test_p3_the_database_refuses_a_second_message_with_the_same_message_id(
    ada, organization, lead
) -> None:
    queue_text_email(organization, ada, [lead])
    message = OutgoingMessage.objects.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        a_copy_of(message, message_id=message.message_id)
    a_copy_of(message)  # the same row with its own Message-ID and token is fine
    assert OutgoingMessage.objects.count() == 2


@pytest.mark.usefixtures("ada_membership")
def test_p3_the_database_refuses_a_second_message_with_the_same_unsubscribe_token(
    ada, organization, lead
) -> None:
    queue_text_email(organization, ada, [lead])
    message = OutgoingMessage.objects.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        a_copy_of(message, unsubscribe_token=message.unsubscribe_token)
    assert OutgoingMessage.objects.count() == 1


@pytest.mark.usefixtures("ada_membership")
def test_p3_a_message_is_found_by_its_message_id_and_its_unsubscribe_page_by_its_token(
    ada, organization, lead
) -> None:
    queue_text_email(organization, ada, [lead])
    message = OutgoingMessage.objects.get()
    assert OutgoingMessage.objects.get(message_id=message.message_id) == message
    page = Client().get(reverse("crm_mail:unsubscribe", args=[message.unsubscribe_token]))
    assert page.status_code == 200
    assert lead.email in page.content.decode()


@pytest.mark.usefixtures("ada_membership")
def test_p3_deleting_a_lead_keeps_its_timeline_and_outbox_rows_without_it(
    ada, organization, lead
) -> None:
    batch = queue_text_email(organization, ada, [lead])
    assert Activity.objects.filter(lead=lead).exists()
    Lead.objects.filter(pk=lead.pk).delete()
    assert Activity.objects.filter(organization=organization, lead__isnull=True).exists()
    assert OutgoingMessage.objects.get(batch=batch).lead_id is None
