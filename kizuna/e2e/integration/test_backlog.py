"""A backlog of response events (E4, D6), with the real Survey service over HTTP.

Deliveries that arrive long after their events (the CRM was down, retries) bring the periodic
reconciliation forward; it records the backlog from GET /responses a page per transaction,
under the intake's rules, and the deliveries still queued then find their responses recorded.
Deletions follow the cut-off of D6 whichever way they arrive.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable

import pytest
from django.db import connection as database
from django.db import connections, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from kizuna.crm.integration import client, services
from kizuna.crm.integration.models import (
    Connection,
    IntakeEvent,
    IntakeOutcome,
    Reconciliation,
    ReconciliationKind,
    SurveyInvitation,
    SurveyResponse,
    UnmatchedResponse,
)
from kizuna.crm.integration.responses import services as responses
from kizuna.crm.models import Activity, ActivityKind, Contact, Lead, Organization
from kizuna.e2e.integration.respond import answer, answers_for, invite, run_worker
from kizuna.identity.models import User
from kizuna.survey.models import Question, Response, Survey
from kizuna.survey.results.services import delete_response
from kizuna.survey.webhooks.models import Delivery
from kizuna.survey.webhooks.services import deliver
from kizuna.testing.races import require_postgresql
from kizuna.work import leases
from kizuna.work.leases import WorkStatus

pytestmark = pytest.mark.usefixtures("survey_service")


def people(organization: Organization, count: int) -> list[Lead]:
    return [
        Lead.objects.create(
            organization=organization, family_name=f"Person{n}", email=f"person{n}@example.com"
        )
        for n in range(count)
    ]


def answered_during_an_outage(minutes: int) -> None:
    """The responses were submitted `minutes` ago and their deliveries held since (the CRM was
    down): the Survey's rows and the events' times moved back together, and the integration
    enabled before them."""
    then = timezone.now() - datetime.timedelta(minutes=minutes)
    Connection.objects.update(enabled_at=then - datetime.timedelta(minutes=1))
    Response.objects.update(submitted_at=then)
    for delivery in Delivery.objects.all():
        delivery.payload["timestamp"] = then.isoformat()
        if delivery.event_type == "response.completed":
            delivery.payload["data"]["submitted_at"] = then.isoformat()
        delivery.save(update_fields=["payload"])


def _page_written_beside(
    write_page: Callable[[], int],
    *,
    delivery: Callable[[], IntakeOutcome],
    then: Callable[[], object] = lambda: None,
) -> int:
    """Run `write_page` while a delivery, in a transaction of its own, has recorded one of
    the page's responses: the delivery runs `then` and commits once the page's INSERT waits
    on its row (PostgreSQL). What write_page returned."""
    inserted = threading.Event()
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            with transaction.atomic():
                assert delivery() == IntakeOutcome.RECORDED
                inserted.set()
                with database.cursor() as cursor:
                    for _ in range(600):
                        cursor.execute(
                            "SELECT count(*) FROM pg_stat_activity "
                            "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                        )
                        if cursor.fetchone()[0]:
                            break
                        time.sleep(0.05)
                    else:
                        raise AssertionError("the page never waited for the delivery's row")
                then()
        except BaseException as error:
            errors.append(error)
            inserted.set()
        finally:
            connections.close_all()

    thread = threading.Thread(target=deliver)
    thread.start()
    assert inserted.wait(timeout=30)
    found = write_page() if not errors else 0
    thread.join(timeout=60)
    assert errors == []
    return found


def periodic() -> Reconciliation:
    return Reconciliation.objects.get(kind=ReconciliationKind.PERIODIC)


def test_e4_a_late_delivery_brings_the_pull_forward_which_records_the_backlog(
    connection: Connection,
    organization: Organization,
    ada_survey: Survey,
    questions: dict[str, Question],
) -> None:
    leads = people(organization, 3)
    for lead in leads:
        answer(invite(connection, lead, ada_survey), answers_for(questions))
    answered_during_an_outage(minutes=2)
    # One delivery is retried now; the others wait for their next attempt, in an hour.
    _first, *held = Delivery.objects.filter(event_type="response.completed").order_by("pk")
    Delivery.objects.filter(pk__in=[d.pk for d in held]).update(
        next_attempt_at=timezone.now() + datetime.timedelta(hours=1)
    )
    run_worker()

    assert SurveyResponse.objects.count() == 3
    assert sorted(SurveyResponse.objects.values_list("lead_id", flat=True)) == sorted(
        lead.pk for lead in leads
    )
    assert periodic().status == WorkStatus.PENDING
    assert periodic().last_recorded == 2  # the two the deliveries had not brought
    assert periodic().next_attempt_at > timezone.now() + datetime.timedelta(minutes=14)
    assert Activity.objects.filter(kind=ActivityKind.SURVEY_RESPONDED).count() == 3
    assert not SurveyInvitation.objects.filter(completed_at__isnull=True).exists()
    # The held deliveries come at last: acknowledged, nothing recorded twice.
    Delivery.objects.update(next_attempt_at=timezone.now())
    run_worker()
    assert SurveyResponse.objects.count() == 3
    outcomes = sorted(
        IntakeEvent.objects.filter(event_type="response.completed").values_list(
            "outcome", flat=True
        )
    )
    assert outcomes == [IntakeOutcome.DUPLICATE, IntakeOutcome.DUPLICATE, IntakeOutcome.RECORDED]
    assert not Delivery.objects.exclude(status=WorkStatus.DONE).exists()


@pytest.mark.parametrize("late", [False, True])
def test_e4_a_delivery_on_time_or_of_an_event_pulled_already_leaves_the_pull_alone(
    connection: Connection,
    organization: Organization,
    ada_survey: Survey,
    questions: dict[str, Question],
    late: bool,
) -> None:
    (lead,) = people(organization, 1)
    answer(invite(connection, lead, ada_survey), answers_for(questions))
    if late:
        answered_during_an_outage(minutes=2)
        Connection.objects.filter(pk=connection.pk).update(reconciled_until=timezone.now())
    scheduled = periodic().next_attempt_at
    run_worker()

    assert SurveyResponse.objects.get().lead == lead
    assert (periodic().next_attempt_at, periodic().last_run_at) == (scheduled, None)


def time_passes(seconds: int) -> None:
    """`seconds` pass: the Survey's responses, their deliveries' event times and the CRM's
    last pull move back by that much."""
    earlier = datetime.timedelta(seconds=seconds)
    Response.objects.update(submitted_at=F("submitted_at") - earlier)
    Connection.objects.update(
        enabled_at=F("enabled_at") - earlier, reconciled_until=F("reconciled_until") - earlier
    )
    for delivery in Delivery.objects.all():
        places = [(delivery.payload, "timestamp")]
        if delivery.event_type == "response.completed":
            places.append((delivery.payload["data"], "submitted_at"))
        for place, key in places:
            place[key] = (datetime.datetime.fromisoformat(place[key]) - earlier).isoformat()
        delivery.save(update_fields=["payload"])


def test_e4_what_was_submitted_after_a_backlogs_pull_is_pulled_before_its_delivery_comes(
    connection: Connection,
    organization: Organization,
    ada_survey: Survey,
    questions: dict[str, Question],
) -> None:
    """The Survey's outbox delivers in the order of the events: a response submitted as the
    CRM came back, too recent for the pull of the backlog, waits behind the whole backlog.
    A late delivery the pull went ahead of brings the next pull forward, which records it."""
    before, also_before, last = people(organization, 3)
    for lead in (before, also_before):
        answer(invite(connection, lead, ada_survey), answers_for(questions))
    answered_during_an_outage(minutes=2)
    answer(invite(connection, last, ada_survey), answers_for(questions))  # just now
    _first, queued, behind = Delivery.objects.filter(event_type="response.completed").order_by("pk")
    Delivery.objects.filter(pk__in=[queued.pk, behind.pk]).update(
        next_attempt_at=timezone.now() + datetime.timedelta(hours=1)
    )
    run_worker()  # the first delivery brings the pull of the backlog forward
    assert sorted(SurveyResponse.objects.values_list("lead_id", flat=True)) == sorted(
        [before.pk, also_before.pk]
    )
    assert periodic().last_recorded == 1
    time_passes(seconds=60)
    Delivery.objects.filter(pk=queued.pk).update(next_attempt_at=timezone.now())
    run_worker()  # the next one, of a response pulled already, brings the next pull

    assert sorted(SurveyResponse.objects.values_list("lead_id", flat=True)) == sorted(
        [before.pk, also_before.pk, last.pk]
    )
    assert periodic().last_recorded == 1
    assert periodic().next_attempt_at > timezone.now() + datetime.timedelta(minutes=14)
    assert Delivery.objects.get(pk=behind.pk).status == WorkStatus.PENDING  # still queued
    # It comes at last: acknowledged, nothing recorded twice.
    Delivery.objects.update(next_attempt_at=timezone.now())
    run_worker()
    assert SurveyResponse.objects.count() == 3
    assert Activity.objects.filter(kind=ActivityKind.SURVEY_RESPONDED).count() == 3
    assert list(
        IntakeEvent.objects.filter(event_type="response.completed")
        .order_by("pk")
        .values_list("outcome", flat=True)
    ) == [IntakeOutcome.RECORDED, IntakeOutcome.DUPLICATE, IntakeOutcome.DUPLICATE]


@pytest.mark.parametrize(
    ("last_recorded", "seconds", "brought"),
    [(1, 60, True), (0, 60, False), (1, 15, False)],
    ids=["after-a-pull-that-found-a-backlog", "after-a-pull-that-found-none", "pulled-just-now"],
)
def test_e4_a_late_delivery_of_a_pulled_response_brings_the_pull_only_behind_a_backlog(
    connection: Connection,
    organization: Organization,
    ada_survey: Survey,
    questions: dict[str, Question],
    last_recorded: int,
    seconds: int,
    brought: bool,
) -> None:
    """Brought forward when the last pull recorded what delivery had not and ended
    PULL_AGAIN_AFTER ago or more; otherwise the delivery is acknowledged and the pull left
    alone (a chain of pulls ends with one that finds nothing)."""
    (lead,) = people(organization, 1)
    answer(invite(connection, lead, ada_survey), answers_for(questions))
    answered_during_an_outage(minutes=2)
    connection.refresh_from_db()
    responses.reconcile(connection=connection, until=timezone.now())
    assert SurveyResponse.objects.get().lead == lead
    Connection.objects.filter(pk=connection.pk).update(
        reconciled_until=timezone.now() - datetime.timedelta(seconds=seconds)
    )
    Reconciliation.objects.filter(pk=periodic().pk).update(last_recorded=last_recorded)
    scheduled = periodic().next_attempt_at
    (delivery,) = leases.claim(
        Delivery.objects.filter(event_type="response.completed"), worker_id="test"
    )
    deliver(delivery)  # over HTTP to the intake, as the worker sends it

    assert Delivery.objects.get(pk=delivery.pk).status == WorkStatus.DONE
    assert IntakeEvent.objects.get().outcome == IntakeOutcome.DUPLICATE
    assert (periodic().next_attempt_at <= timezone.now()) is brought
    if not brought:
        assert periodic().next_attempt_at == scheduled


def test_e4_a_page_is_recorded_under_the_intakes_rules_in_the_same_queries_whatever_its_size(
    connection: Connection,
    organization: Organization,
    ada_survey: Survey,
    questions: dict[str, Question],
) -> None:
    """A lead, a contact, a lead converted meanwhile, a lead deleted meanwhile (kept as
    unmatched) and one recorded already by its delivery, in one page; then a page of one."""
    lead, converted, gone, delivered, alone = people(organization, 5)
    contact = Contact.objects.create(organization=organization, family_name="Mori")
    invitations: dict[Lead | Contact, SurveyInvitation] = {
        record: invite(connection, record, ada_survey)
        for record in (lead, converted, gone, delivered, contact, alone)
    }
    for record in (delivered, lead, contact, converted, gone):
        answer(invitations[record], answers_for(questions))
    # Every delivery was lost but the response.completed of `delivered`.
    Delivery.objects.exclude(
        pk=Delivery.objects.filter(event_type="response.completed").order_by("pk")[:1]
    ).update(status=WorkStatus.FAILED)
    run_worker()
    assert SurveyResponse.objects.get().lead == delivered
    new_contact = Contact.objects.create(organization=organization, family_name="Converted")
    Lead.objects.filter(pk=converted.pk).update(converted_contact=new_contact)
    gone_reference = connection.recipient_reference(gone)
    gone.delete()
    items = client.list_responses(connection.credentials(), limit=500).items

    with CaptureQueriesContext(database) as page_of_five:
        found = responses.record_responses(connection, items)

    assert found == 4
    expected: dict[tuple[int | None, int | None], Lead | Contact] = {
        (lead.pk, None): lead,
        (None, contact.pk): contact,
        (converted.pk, new_contact.pk): converted,
    }
    rows = {
        (row.lead_id, row.contact_id): row for row in SurveyResponse.objects.exclude(lead=delivered)
    }
    assert sorted(rows, key=str) == sorted(expected, key=str)
    for place, row in rows.items():
        invited = invitations[expected[place]]
        assert row.invitation_id == invited.pk
        assert row.response_id == str(
            Response.objects.get(invitation__token=invited.survey_token).pk
        )
        assert [answer["display"] for answer in row.answers][:2] == ["Good", "9"]
        invited.refresh_from_db()
        assert invited.completed_at == row.submitted_at
        timeline = Activity.objects.get(
            kind=ActivityKind.SURVEY_RESPONDED, data__response_id=row.response_id
        )
        assert (timeline.lead_id, timeline.contact_id, timeline.data["survey_id"]) == (
            *place,
            ada_survey.pk,
        )
    unmatched = UnmatchedResponse.objects.get()
    assert (unmatched.recipient_reference, unmatched.connection) == (gone_reference, connection)
    assert SurveyResponse.objects.filter(lead=delivered).count() == 1
    assert Activity.objects.filter(kind=ActivityKind.SURVEY_RESPONDED).count() == 4
    # The same page again records nothing; a page of one takes the queries of a page of five.
    assert responses.record_responses(connection, items) == 0
    answer(invitations[alone], answers_for(questions))
    latest = client.list_responses(connection.credentials(), limit=500).items[-1:]
    with CaptureQueriesContext(database) as page_of_one:
        assert responses.record_responses(connection, latest) == 1
    assert len(page_of_one.captured_queries) == len(page_of_five.captured_queries)


@pytest.mark.postgres
def test_e4_a_response_its_delivery_records_while_the_page_is_written_is_recorded_once(
    connection: Connection,
    organization: Organization,
    ada_survey: Survey,
    questions: dict[str, Question],
) -> None:
    """A delivery records one of the page's responses after the page found it unrecorded and
    commits while the page's INSERT waits on it: the delivery's row stays, the page records
    the others, each response once with one timeline entry."""
    require_postgresql("needs two writers at once")
    leads = people(organization, 3)
    for lead in leads:
        answer(invite(connection, lead, ada_survey), answers_for(questions))
    items = client.list_responses(connection.credentials(), limit=500).items
    found = _page_written_beside(
        lambda: responses.record_responses(connection, items),
        delivery=lambda: responses.record_response(connection, items[1])[0],
    )

    assert found == 2
    assert sorted(SurveyResponse.objects.values_list("lead_id", flat=True)) == sorted(
        lead.pk for lead in leads
    )
    assert Activity.objects.filter(kind=ActivityKind.SURVEY_RESPONDED).count() == 3


@pytest.mark.postgres
def test_e4_a_lead_deleted_while_its_page_is_written_keeps_its_response_as_unmatched(
    connection: Connection,
    organization: Organization,
    ada_survey: Survey,
    questions: dict[str, Question],
) -> None:
    """The page found the third lead, then the lead is deleted (in the transaction of a
    delivery the page's INSERT waits on) before the page commits: the page fails on the
    missing lead and is recorded one response at a time, the deleted lead's response kept for
    the administrators, the others recorded once."""
    require_postgresql("needs two writers at once")
    leads = people(organization, 3)
    for lead in leads:
        answer(invite(connection, lead, ada_survey), answers_for(questions))
    gone_reference = connection.recipient_reference(leads[2])
    items = client.list_responses(connection.credentials(), limit=500).items
    found = _page_written_beside(
        lambda: responses.record_responses(connection, items),
        delivery=lambda: responses.record_response(connection, items[1])[0],
        then=lambda: Lead.objects.get(pk=leads[2].pk).delete(),
    )

    assert found == 2  # the first recorded, the third kept; the second was the delivery's
    assert sorted(SurveyResponse.objects.values_list("lead_id", flat=True)) == sorted(
        lead.pk for lead in leads[:2]
    )
    unmatched = UnmatchedResponse.objects.get()
    assert (unmatched.recipient_reference, unmatched.connection) == (gone_reference, connection)
    assert unmatched.response_id == str(items[2]["response_id"])
    assert (unmatched.submitted_at, len(unmatched.answers)) == (
        datetime.datetime.fromisoformat(items[2]["submitted_at"]),
        len(items[2]["answers"]),
    )
    assert Activity.objects.filter(kind=ActivityKind.SURVEY_RESPONDED).count() == 2
    assert responses.record_responses(connection, items) == 0  # nothing twice


# --- D6 for deletions -----------------------------------------------------------------------


def test_d6_a_deletion_is_applied_when_made_before_the_cut_off_never_when_made_after(
    connection: Connection,
    organization: Organization,
    ada: User,
    ada_survey: Survey,
    questions: dict[str, Question],
) -> None:
    """Both deletions are delivered after disabling, while the endpoint still exists: the CRM
    keeps what the Survey service held at the cut-off, as the final reconciliation does."""
    before, after = people(organization, 2)
    for lead in (before, after):
        answer(invite(connection, lead, ada_survey), answers_for(questions))
    run_worker()
    delete_response(
        response=Response.objects.get(invitation__recipient_reference__endswith=f":{before.pk}")
    )
    Delivery.objects.filter(event_type="response.deleted").update(
        next_attempt_at=timezone.now() + datetime.timedelta(hours=1)  # the CRM is slow to answer
    )
    services.disable(organization=organization, by=ada)
    delete_response(
        response=Response.objects.get(invitation__recipient_reference__endswith=f":{after.pk}")
    )
    Delivery.objects.update(next_attempt_at=timezone.now())
    run_worker()

    kept = SurveyResponse.objects.get(lead=after)
    removed = SurveyResponse.objects.get(lead=before)
    assert (removed.answers, removed.deleted_at is not None) == ([], True)
    assert (len(kept.answers), kept.deleted_at) == (4, None)
    assert list(
        Activity.objects.filter(kind=ActivityKind.SURVEY_RESPONSE_DELETED).values_list(
            "lead_id", flat=True
        )
    ) == [before.pk]
    assert sorted(
        IntakeEvent.objects.filter(event_type="response.deleted").values_list("outcome", flat=True)
    ) == [IntakeOutcome.AFTER_CUT_OFF, IntakeOutcome.RECORDED]
