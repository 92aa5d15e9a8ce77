"""What an administrator reads about each delivery the intake refused or kept (E4, issue 14):
the webhook-id and the reason, as the Survey service sent them, within their columns.

Two organizations with their connections are in the database, so that an event kept on the
wrong one shows. The rules of recording are in test_intake_rules.py.
"""

from __future__ import annotations

import datetime
import json

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from standardwebhooks import Webhook

from kizuna.crm.integration.models import (
    Connection,
    IntakeEvent,
    IntakeOutcome,
    Reconciliation,
    ReconciliationKind,
    SurveyResponse,
)
from kizuna.crm.models import Lead, Organization
from kizuna.testing.intake import completed, post
from kizuna.work.leases import WorkStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def hana(organization: Organization) -> Lead:
    return Lead.objects.create(organization=organization, family_name="Hana")


def iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


def kept() -> list[tuple[int, str, str, str]]:
    return list(
        IntakeEvent.objects.order_by("pk").values_list(
            "connection_id", "event_id", "outcome", "detail"
        )
    )


def test_a_malformed_signature_header_is_refused_with_the_reason_kept_for_the_admin(
    connection: Connection, other_connection: Connection, hana: Lead
):
    status = post(
        connection, completed(connection, hana), message_id="msg_1", signature="v1,not base64!"
    )

    assert status == (401, {"outcome": "bad_signature"})
    assert kept() == [
        (
            connection.pk,
            "msg_1",
            IntakeOutcome.BAD_SIGNATURE,
            "Error('Incorrect padding')",
        )
    ]


def test_a_delivery_without_a_webhook_id_is_refused_and_kept_without_one(
    connection: Connection, hana: Lead
):
    body = json.dumps(completed(connection, hana)).encode()
    signed_at = timezone.now()
    headers = {
        "webhook-timestamp": str(int(signed_at.timestamp())),
        "webhook-signature": Webhook(connection.webhook_secret()).sign(
            "msg_1", signed_at, body.decode()
        ),
    }

    page = Client().post(
        reverse("crm_integration:intake", args=[connection.intake_token]),
        data=body,
        content_type="application/json",
        headers=headers,
    )

    assert (page.status_code, page.json()) == (401, {"outcome": "bad_signature"})
    assert kept() == [(connection.pk, "", IntakeOutcome.BAD_SIGNATURE, "Missing required headers")]
    assert not SurveyResponse.objects.exists()


def test_a_webhook_id_longer_than_its_column_is_kept_cut_to_its_first_100_characters(
    connection: Connection, hana: Lead
):
    message_id = "msg_" + "0123456789" * 15

    assert post(connection, completed(connection, hana), message_id=message_id) == (
        200,
        {"outcome": "recorded"},
    )

    assert kept() == [(connection.pk, message_id[:100], IntakeOutcome.RECORDED, "")]


def test_a_late_delivery_of_a_response_id_another_organization_recorded_is_recorded_here(
    connection: Connection, other_connection: Connection, hana: Lead, other_organization
):
    """A late delivery first looks for its response among those recorded (a backlog's pull
    went ahead): among this connection's, not another organization's with the same id."""
    theirs = Lead.objects.create(organization=other_organization, family_name="Sato")
    assert post(other_connection, completed(other_connection, theirs, response_id="r-1")) == (
        200,
        {"outcome": "recorded"},
    )
    late = completed(connection, hana, response_id="r-1")
    late["timestamp"] = iso(timezone.now() - datetime.timedelta(minutes=2))

    assert post(connection, late, message_id="msg_late") == (200, {"outcome": "recorded"})

    assert sorted(SurveyResponse.objects.values_list("connection_id", "lead_id")) == sorted(
        [(other_connection.pk, theirs.pk), (connection.pk, hana.pk)]
    )
    assert kept()[-1] == (connection.pk, "msg_late", IntakeOutcome.RECORDED, "")


def test_the_first_event_a_connection_receives_sets_when_it_last_heard_from_the_survey(
    connection: Connection, other_connection: Connection, hana: Lead
):
    assert connection.last_event_at is None
    before = timezone.now()

    assert post(connection, completed(connection, hana)) == (200, {"outcome": "recorded"})

    connection.refresh_from_db()
    other_connection.refresh_from_db()
    assert connection.last_event_at is not None
    assert connection.last_event_at >= before
    assert other_connection.last_event_at is None


def late_delivery(connection: Connection, record: Lead) -> dict[str, object]:
    """A response.completed whose event happened well before its delivery (a backlog)."""
    event = completed(connection, record)
    event["timestamp"] = iso(timezone.now() - datetime.timedelta(minutes=2))
    return event


def periodic(connection: Connection, **fields: object) -> Reconciliation:
    """The connection's periodic pull; the connection enabled an hour ago, never pulled since
    (so a late delivery's event is one no pull has covered)."""
    Connection.objects.filter(pk=connection.pk).update(
        enabled_at=timezone.now() - datetime.timedelta(hours=1)
    )
    return Reconciliation.objects.create(
        connection=connection, kind=ReconciliationKind.PERIODIC, **fields
    )


def next_attempts() -> dict[tuple[int, str], tuple[str, datetime.datetime]]:
    return {
        (row.connection_id, row.kind): (row.status, row.next_attempt_at)
        for row in Reconciliation.objects.all()
    }


def test_e4_a_late_delivery_brings_forward_only_its_own_connections_periodic_pull(
    connection: Connection, other_connection: Connection, hana: Lead
):
    """The backlog it belongs to is this connection's: another organization's pull, and an
    administrator's pull of this one waiting for its time, stay as they were."""
    later = timezone.now() + datetime.timedelta(minutes=10)
    ours = periodic(connection, next_attempt_at=later)
    theirs = periodic(other_connection, next_attempt_at=later)
    requested = Reconciliation.objects.create(
        connection=connection, kind=ReconciliationKind.REQUESTED, next_attempt_at=later
    )
    before = timezone.now()

    assert post(connection, late_delivery(connection, hana)) == (200, {"outcome": "recorded"})

    ours.refresh_from_db()
    assert before <= ours.next_attempt_at <= timezone.now()
    assert next_attempts()[(other_connection.pk, ReconciliationKind.PERIODIC)] == (
        WorkStatus.PENDING,
        theirs.next_attempt_at,
    )
    assert next_attempts()[(connection.pk, ReconciliationKind.REQUESTED)] == (
        WorkStatus.PENDING,
        requested.next_attempt_at,
    )


def test_e4_a_late_delivery_leaves_a_pull_that_is_running_or_due_already_as_it_is(
    connection: Connection, other_connection: Connection, hana: Lead, other_organization
):
    """A pull running now (leased) keeps its next time, and one due already is not moved
    later to now."""
    running = periodic(
        connection,
        status=WorkStatus.LEASED,
        leased_by="worker-1",
        leased_until=timezone.now() + datetime.timedelta(minutes=5),
        next_attempt_at=timezone.now() + datetime.timedelta(minutes=10),
    )
    due = periodic(other_connection, next_attempt_at=timezone.now() - datetime.timedelta(minutes=1))
    theirs = Lead.objects.create(organization=other_organization, family_name="Sato")

    assert post(connection, late_delivery(connection, hana)) == (200, {"outcome": "recorded"})
    assert post(other_connection, late_delivery(other_connection, theirs)) == (
        200,
        {"outcome": "recorded"},
    )

    assert next_attempts() == {
        (connection.pk, ReconciliationKind.PERIODIC): (WorkStatus.LEASED, running.next_attempt_at),
        (other_connection.pk, ReconciliationKind.PERIODIC): (
            WorkStatus.PENDING,
            due.next_attempt_at,
        ),
    }
