"""What each reconciliation run leaves behind (E4, D6, K2), pinned to the exact value: the row
(its state, when it runs next, what it recorded, why it failed) and the connection's marks
(how far it has pulled, when it last did). Two organizations are connected, Ada's to her
Survey account and Charlie's to Carol's, so that a run reaching the other connection shows.

The Survey service is the real one, over HTTP (kizuna/e2e/integration/conftest.py).
"""

from __future__ import annotations

import datetime
import logging
import re
from typing import Any

import pytest
from django.utils import timezone

from kizuna.crm.integration import client, services
from kizuna.crm.integration.client import Credentials
from kizuna.crm.integration.models import (
    Connection,
    ConnectionState,
    Reconciliation,
    ReconciliationKind,
    SurveyResponse,
)
from kizuna.crm.integration.responses import services as intake
from kizuna.crm.models import Lead, Membership, Organization
from kizuna.e2e.integration.respond import (
    answer,
    answers_for,
    deleted_minutes_ago,
    enable,
    invite,
    lose_deliveries,
    make_due,
    run_worker,
    submitted_minutes_ago,
)
from kizuna.identity.models import User
from kizuna.lib.api_errors import ErrorCode
from kizuna.survey.models import Question, Response, Survey
from kizuna.survey.results.services import delete_response
from kizuna.survey.webhooks.models import DeletedResponse, WebhookEndpoint
from kizuna.work.leases import WorkStatus

pytestmark = pytest.mark.usefixtures("survey_service")

UNREACHABLE = "http://127.0.0.1:9"


@pytest.fixture
def charlie_connection(
    other_organization: Organization,
    charlie: User,
    charlie_membership: Membership,
    carol_credentials: Credentials,
) -> Connection:
    """Charlie's organization, connected to Carol's Survey account."""
    return enable(other_organization, charlie, carol_credentials)


def periodic_of(connection: Connection) -> Reconciliation:
    return Reconciliation.objects.get(connection=connection, kind=ReconciliationKind.PERIODIC)


def fresh(connection: Connection) -> Connection:
    return Connection.objects.get(pk=connection.pk)


def leads(organization: Organization, count: int) -> list[Lead]:
    return [
        Lead.objects.create(
            organization=organization, family_name=f"Lead {n}", email=f"lead{n}@example.com"
        )
        for n in range(count)
    ]


def test_e4_a_periodic_run_pulls_up_to_a_minute_ago_and_moves_only_its_own_connections_marks(
    connection: Connection,
    charlie_connection: Connection,
    lead: Lead,
    ada_survey: Survey,
    questions: dict[str, Question],
) -> None:
    answer(invite(connection, lead, ada_survey), answers_for(questions))
    lose_deliveries()
    submitted_minutes_ago(2)
    make_due(ReconciliationKind.PERIODIC)
    Reconciliation.objects.filter(connection=charlie_connection).update(
        next_attempt_at=timezone.now() + datetime.timedelta(hours=1)
    )
    run_worker()

    periodic = periodic_of(connection)
    assert periodic.last_run_at is not None
    assert (periodic.status, periodic.attempts, periodic.leased_until) == (
        WorkStatus.PENDING,
        0,
        None,
    )
    assert periodic.next_attempt_at == periodic.last_run_at + Reconciliation.every
    assert (periodic.last_recorded, periodic.last_error) == (1, "")
    ada = fresh(connection)
    assert ada.reconciled_until == periodic.last_run_at - intake.RECONCILIATION_MARGIN
    assert ada.last_reconciled_at is not None
    assert ada.last_reconciled_at >= periodic.last_run_at
    charlie = fresh(charlie_connection)
    assert (charlie.reconciled_until, charlie.last_reconciled_at) == (None, None)
    assert periodic_of(charlie_connection).last_run_at is None


def test_e4_each_periodic_run_starts_five_minutes_before_the_last_one_ended(
    connection: Connection,
    lead: Lead,
    ada_survey: Survey,
    questions: dict[str, Question],
) -> None:
    """A response stored just after a pull had passed its submission time is still found by
    the next pull; one submitted long before it is not asked for again."""
    make_due(ReconciliationKind.PERIODIC)
    run_worker()
    first_end = fresh(connection).reconciled_until
    assert first_end is not None
    answer(invite(connection, lead, ada_survey), answers_for(questions))
    lose_deliveries()
    Response.objects.update(submitted_at=first_end - datetime.timedelta(minutes=4, seconds=30))
    make_due(ReconciliationKind.PERIODIC)
    run_worker()

    assert SurveyResponse.objects.filter(lead=lead).count() == 1
    second_end = fresh(connection).reconciled_until
    assert second_end is not None
    assert second_end > first_end
    assert periodic_of(connection).last_recorded == 1


def test_e4_the_pulled_up_to_mark_never_moves_back(
    connection: Connection,
) -> None:
    ahead = timezone.now() + datetime.timedelta(hours=1)
    Connection.objects.filter(pk=connection.pk).update(reconciled_until=ahead)
    make_due(ReconciliationKind.PERIODIC)
    run_worker()

    assert fresh(connection).reconciled_until == ahead
    assert fresh(connection).last_reconciled_at is not None


def test_e4_what_was_submitted_or_deleted_in_the_last_minute_waits_for_the_next_pull(
    connection: Connection,
    lead: Lead,
    ada_survey: Survey,
    questions: dict[str, Question],
) -> None:
    answer(invite(connection, lead, ada_survey), answers_for(questions))
    lose_deliveries()
    make_due(ReconciliationKind.PERIODIC)
    run_worker()

    assert not SurveyResponse.objects.exists()
    assert periodic_of(connection).last_recorded == 0
    submitted_minutes_ago(2)
    make_due(ReconciliationKind.PERIODIC)
    run_worker()
    assert SurveyResponse.objects.filter(lead=lead).count() == 1
    delete_response(response=Response.objects.get())
    lose_deliveries()
    make_due(ReconciliationKind.PERIODIC)
    run_worker()
    assert SurveyResponse.objects.get(lead=lead).deleted_at is None
    deleted_minutes_ago(2)
    make_due(ReconciliationKind.PERIODIC)
    run_worker()
    assert SurveyResponse.objects.get(lead=lead).deleted_at is not None
    assert periodic_of(connection).last_recorded == 1


def test_e4_a_pull_follows_every_page_of_responses_and_of_deletions(
    connection: Connection,
    organization: Organization,
    ada_survey: Survey,
    questions: dict[str, Question],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(intake, "RECONCILIATION_PAGE_SIZE", 2)
    records = leads(organization, 5)
    for record in records:
        answer(invite(connection, record, ada_survey), answers_for(questions))
    lose_deliveries()
    submitted_minutes_ago(3)
    make_due(ReconciliationKind.PERIODIC)
    run_worker()

    assert SurveyResponse.objects.filter(deleted_at__isnull=True).count() == 5
    assert periodic_of(connection).last_recorded == 5
    for response in Response.objects.all():
        delete_response(response=response)
    lose_deliveries()
    deleted_minutes_ago(2)
    make_due(ReconciliationKind.PERIODIC)
    run_worker()
    assert SurveyResponse.objects.filter(deleted_at__isnull=True).count() == 0
    assert periodic_of(connection).last_recorded == 5


def test_e4_a_periodic_run_that_cannot_reach_the_survey_tries_again_next_turn_not_sooner(
    connection: Connection, settings: Any
) -> None:
    settings.SURVEY_URL = UNREACHABLE
    make_due(ReconciliationKind.PERIODIC)
    run_worker()

    periodic = periodic_of(connection)
    assert periodic.last_run_at is not None
    assert (periodic.status, periodic.attempts, periodic.leased_until) == (
        WorkStatus.PENDING,
        0,
        None,
    )
    assert periodic.next_attempt_at == periodic.last_run_at + Reconciliation.every
    assert periodic.last_error.startswith("unreachable: ")
    assert periodic.last_recorded == 0
    assert fresh(connection).reconciled_until is None


def test_k2_a_periodic_run_while_the_key_is_refused_does_not_ask_and_says_why(
    connection: Connection, settings: Any
) -> None:
    Connection.objects.filter(pk=connection.pk).update(state=ConnectionState.NEEDS_RECONNECTION)
    settings.SURVEY_URL = UNREACHABLE  # it would fail as "unreachable" if it asked
    make_due(ReconciliationKind.PERIODIC)
    run_worker()

    periodic = periodic_of(connection)
    assert (periodic.status, periodic.attempts) == (WorkStatus.PENDING, 0)
    assert periodic.last_error == str(client.MESSAGES[ErrorCode.REVOKED_KEY])
    assert periodic.last_recorded == 0
    assert periodic.last_run_at is not None
    assert periodic.next_attempt_at == periodic.last_run_at + Reconciliation.every


def test_k2_a_run_now_queued_before_the_key_was_refused_fails_once_and_says_why(
    connection: Connection, ada: User
) -> None:
    requested = Reconciliation.objects.create(
        connection=connection, kind=ReconciliationKind.REQUESTED, requested_by=ada
    )
    Connection.objects.filter(pk=connection.pk).update(state=ConnectionState.NEEDS_RECONNECTION)
    run_worker()

    requested.refresh_from_db()
    assert (requested.status, requested.attempts) == (WorkStatus.FAILED, 1)
    assert requested.last_error == str(client.MESSAGES[ErrorCode.REVOKED_KEY])
    assert (requested.last_run_at is not None, requested.last_recorded) == (True, 0)


def test_e4_a_run_now_that_cannot_reach_the_survey_fails_at_once_and_is_not_retried(
    connection: Connection, ada: User, settings: Any
) -> None:
    requested = Reconciliation.objects.create(
        connection=connection, kind=ReconciliationKind.REQUESTED, requested_by=ada
    )
    settings.SURVEY_URL = UNREACHABLE
    run_worker()

    requested.refresh_from_db()
    assert (requested.status, requested.attempts) == (WorkStatus.FAILED, 1)
    assert requested.last_error.startswith("unreachable: ")
    assert requested.last_run_at is not None
    assert requested.finished_at is not None
    assert requested.leased_until is None


def test_e4_a_run_now_records_what_it_found_and_when_it_ran(
    connection: Connection,
    ada: User,
    lead: Lead,
    ada_survey: Survey,
    questions: dict[str, Question],
) -> None:
    answer(invite(connection, lead, ada_survey), answers_for(questions))
    lose_deliveries()
    submitted_minutes_ago(2)
    requested = Reconciliation.objects.create(
        connection=connection, kind=ReconciliationKind.REQUESTED, requested_by=ada
    )
    before = timezone.now()
    run_worker()

    requested.refresh_from_db()
    assert (requested.status, requested.last_recorded, requested.last_error) == (
        WorkStatus.DONE,
        1,
        "",
    )
    assert requested.last_run_at is not None
    assert requested.last_run_at >= before
    assert fresh(connection).reconciled_until == (
        requested.last_run_at - intake.RECONCILIATION_MARGIN
    )


def test_e4_the_log_says_when_deletions_older_than_the_survey_keeps_could_not_be_listed(
    connection: Connection, caplog: pytest.LogCaptureFixture
) -> None:
    long_ago = timezone.now() - datetime.timedelta(days=40)
    Connection.objects.filter(pk=connection.pk).update(reconciled_until=long_ago)
    with caplog.at_level(logging.WARNING, logger=intake.logger.name):
        make_due(ReconciliationKind.PERIODIC)
        run_worker()

    warnings = [
        record.getMessage() for record in caplog.records if record.name == intake.logger.name
    ]
    assert len(warnings) == 1
    found = re.fullmatch(
        rf"Connection {connection.pk} last reconciled before (\S+): deletions older than that "
        r"are no longer listed by the Survey service",
        warnings[0],
    )
    assert found is not None
    kept_since = datetime.datetime.fromisoformat(found.group(1))
    thirty_days_ago = timezone.now() - DeletedResponse.RETENTION
    assert thirty_days_ago - datetime.timedelta(minutes=5) < kept_since <= thirty_days_ago
    assert periodic_of(connection).last_error == ""


def test_e4_a_connection_reconciled_recently_logs_no_warning(
    connection: Connection, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=intake.logger.name):
        make_due(ReconciliationKind.PERIODIC)
        run_worker()

    assert [record for record in caplog.records if record.name == intake.logger.name] == []


def test_d6_re_enabling_does_not_pull_what_was_submitted_while_disabled(
    connection: Connection,
    organization: Organization,
    ada: User,
    ada_credentials: Credentials,
    lead: Lead,
    ada_survey: Survey,
    questions: dict[str, Question],
) -> None:
    """Neither a response submitted in the gap nor the deletion of another made in the gap."""
    [other] = leads(organization, 1)
    links = [invite(connection, record, ada_survey) for record in (lead, other)]
    services.disable(organization=organization, by=ada)
    for link in links:  # D5: the links still work, after the cut-off
        answer(link, answers_for(questions))
    delete_response(response=Response.objects.get(recipient_reference=links[1].recipient_reference))
    hour_ago = timezone.now() - datetime.timedelta(hours=1)
    Connection.objects.filter(pk=connection.pk).update(disabled_at=hour_ago)
    Response.objects.update(submitted_at=hour_ago + datetime.timedelta(minutes=30))
    DeletedResponse.objects.update(
        submitted_at=hour_ago + datetime.timedelta(minutes=30),
        deleted_at=hour_ago + datetime.timedelta(minutes=40),
    )
    make_due(ReconciliationKind.FINAL)
    run_worker()
    again = enable(organization, ada, ada_credentials)
    make_due(ReconciliationKind.PERIODIC)
    run_worker()

    assert not SurveyResponse.objects.exists()
    assert periodic_of(again).status == WorkStatus.PENDING
    assert (periodic_of(again).last_recorded, periodic_of(again).last_error) == (0, "")


def test_d6_re_enabling_minutes_after_a_response_in_the_gap_does_not_pull_it(
    connection: Connection,
    organization: Organization,
    ada: User,
    ada_credentials: Credentials,
    lead: Lead,
    ada_survey: Survey,
    questions: dict[str, Question],
) -> None:
    """The gap is short: disabled four minutes ago, answered through the old link three minutes
    ago, enabled again now. The new connection's first pull starts where it was enabled, not
    five minutes before, so the answer of the gap stays out (the overlap is for later pulls)."""
    link = invite(connection, lead, ada_survey)
    services.disable(organization=organization, by=ada)
    answer(link, answers_for(questions))
    now = timezone.now()
    Connection.objects.filter(pk=connection.pk).update(
        disabled_at=now - datetime.timedelta(minutes=4)
    )
    submitted_minutes_ago(3)
    make_due(ReconciliationKind.FINAL)
    run_worker()
    again = enable(organization, ada, ada_credentials)
    make_due(ReconciliationKind.PERIODIC)
    run_worker()

    assert not SurveyResponse.objects.exists()
    assert periodic_of(again).status == WorkStatus.PENDING
    assert (periodic_of(again).last_recorded, periodic_of(again).last_error) == (0, "")


# --- the final run after disabling (D6) ---------------------------------------------------------


def test_d6_the_final_run_records_when_it_ran_and_what_it_found(
    connection: Connection,
    organization: Organization,
    ada: User,
    lead: Lead,
    ada_survey: Survey,
    questions: dict[str, Question],
) -> None:
    answer(invite(connection, lead, ada_survey), answers_for(questions))
    lose_deliveries()
    services.disable(organization=organization, by=ada)
    make_due(ReconciliationKind.FINAL)
    run_worker()

    final = Reconciliation.objects.get(kind=ReconciliationKind.FINAL)
    assert (final.status, final.last_recorded, final.last_error) == (WorkStatus.DONE, 1, "")
    assert final.last_run_at is not None
    disabled = fresh(connection)
    assert disabled.final_reconciliation_done_at == final.last_run_at
    assert disabled.webhook_endpoint_deleted_at == final.last_run_at


def test_d6_a_final_run_whose_pull_is_done_only_deletes_the_endpoint(
    connection: Connection,
    organization: Organization,
    ada: User,
    lead: Lead,
    ada_survey: Survey,
    questions: dict[str, Question],
) -> None:
    """A retry after the pull succeeded and the endpoint's deletion failed does not pull
    again (the pull's result is kept; pulling twice only costs the Survey service)."""
    answer(invite(connection, lead, ada_survey), answers_for(questions))
    lose_deliveries()
    services.disable(organization=organization, by=ada)
    pulled_at = timezone.now() - datetime.timedelta(minutes=1)
    Connection.objects.filter(pk=connection.pk).update(final_reconciliation_done_at=pulled_at)
    make_due(ReconciliationKind.FINAL)
    run_worker()

    final = Reconciliation.objects.get(kind=ReconciliationKind.FINAL)
    assert (final.status, final.last_recorded) == (WorkStatus.DONE, 0)
    assert not SurveyResponse.objects.exists()
    disabled = fresh(connection)
    assert disabled.final_reconciliation_done_at == pulled_at
    assert disabled.webhook_endpoint_deleted_at is not None
    assert not WebhookEndpoint.objects.filter(pk=connection.webhook_endpoint_id or 0).exists()


def test_d6_an_endpoint_already_deleted_at_the_survey_service_finishes_the_disabling(
    connection: Connection, organization: Organization, ada: User
) -> None:
    services.disable(organization=organization, by=ada)
    WebhookEndpoint.objects.filter(pk=connection.webhook_endpoint_id or 0).delete()
    make_due(ReconciliationKind.FINAL)
    run_worker()

    final = Reconciliation.objects.get(kind=ReconciliationKind.FINAL)
    assert (final.status, final.last_error) == (WorkStatus.DONE, "")
    assert fresh(connection).webhook_endpoint_deleted_at is not None


def test_d6_a_final_run_that_cannot_reach_the_survey_says_when_it_tried(
    connection: Connection, organization: Organization, ada: User, settings: Any
) -> None:
    services.disable(organization=organization, by=ada)
    settings.SURVEY_URL = UNREACHABLE
    make_due(ReconciliationKind.FINAL)
    run_worker()

    final = Reconciliation.objects.get(kind=ReconciliationKind.FINAL)
    assert (final.status, final.attempts) == (WorkStatus.PENDING, 1)
    assert final.last_error.startswith("unreachable: ")
    assert final.last_run_at is not None
    assert fresh(connection).final_reconciliation_done_at is None


def test_d6_a_final_run_after_finishing_without_the_survey_ends_without_calling_it(
    connection: Connection, organization: Organization, ada: User, settings: Any
) -> None:
    """A final run still queued when the administrator finished without the Survey service
    (its worker's lease ran out meanwhile) ends at its next turn and asks the Survey nothing."""
    services.disable(organization=organization, by=ada)
    finished_at = timezone.now()
    Connection.objects.filter(pk=connection.pk).update(finished_without_survey_at=finished_at)
    settings.SURVEY_URL = UNREACHABLE  # any call would fail as "unreachable"
    make_due(ReconciliationKind.FINAL)
    run_worker()

    final = Reconciliation.objects.get(kind=ReconciliationKind.FINAL)
    assert (final.status, final.attempts, final.last_error) == (WorkStatus.DONE, 1, "")
    assert final.last_run_at is not None
    assert final.last_run_at >= finished_at
    disabled = fresh(connection)
    assert (disabled.final_reconciliation_done_at, disabled.webhook_endpoint_deleted_at) == (
        None,
        None,
    )
