"""How a send's rows reach PostgreSQL (issue 11: the compose page queues the first part of a
send while the user waits, the worker the others).

psycopg binds the parameters on the client (Django's default) and reads a statement's text
for its placeholders again at every execution, unless the text is at most 4,096 bytes with at
most 50 parameters: then it keeps what it read. A 200-row INSERT of outbox rows (18 KB, 5,000
parameters) cost it 10-12 ms of CPU each time, about half the CPU of queueing 1,000 messages.
The rows go instead as one short statement run once a row (executemany, in a pipeline).
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from kizuna.crm.mail.models import OutgoingMessage
from kizuna.crm.mail.tests.conftest import queue_text_email
from kizuna.crm.models import Activity, ActivityKind, Lead
from kizuna.testing.races import require_postgresql

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

# psycopg._queries: MAX_CACHED_STATEMENT_LENGTH, MAX_CACHED_STATEMENT_PARAMS.
DRIVER_KEEPS_TEXT_UP_TO = 4096
DRIVER_KEEPS_PARAMETERS_UP_TO = 50


def test_p3_a_send_writes_its_rows_to_postgresql_in_statements_the_driver_reads_once(
    organization, ada
):
    require_postgresql("psycopg's statement cache is PostgreSQL's")
    leads = Lead.objects.bulk_create(
        Lead(organization=organization, family_name=f"F{n}", email=f"l{n}@example.com")
        for n in range(250)
    )

    with CaptureQueriesContext(connection) as captured:
        queue_text_email(organization, ada, leads)

    tables = [OutgoingMessage._meta.db_table, Activity._meta.db_table]
    inserts = [
        query["sql"]
        for query in captured
        if any(f'INSERT INTO "{table}"' in query["sql"] for table in tables)
    ]
    assert {table for table in tables if any(f'"{table}"' in sql for sql in inserts)} == set(tables)
    for sql in inserts:
        times, _, statement = sql.partition(" times: ")
        assert times.isdigit(), sql[:120]  # one statement, run once a row
        assert len(statement.encode()) <= DRIVER_KEEPS_TEXT_UP_TO
        assert statement.count("%s") <= DRIVER_KEEPS_PARAMETERS_UP_TO
    assert OutgoingMessage.objects.filter(lead__in=leads).count() == 250
    assert Activity.objects.filter(kind=ActivityKind.EMAIL_QUEUED, lead__in=leads).count() == 250
