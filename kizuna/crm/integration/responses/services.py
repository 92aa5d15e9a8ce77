"""Recording what the Survey service reports (E4, D6): webhook deliveries at a connection's
intake URL and the reconciliation pull that heals missed deliveries, under one set of rules.

- A response is recorded once per (connection, response id), whatever the order and the
  number of arrivals: by the webhook, by a retry, by reconciliation.
- Only a recipient reference made by a connection of the same organization counts; a
  response without one (the public link) or of another CRM is acknowledged, not recorded.
- D6: a response submitted before the cut-off (the moment the integration was disabled)
  is recorded even when it arrives later; one submitted after it never is.
- D6 for deletions: the CRM keeps what the Survey service held at the cut-off. A deletion
  made before it is applied even when it arrives later; one made after it never is, by a
  webhook or by the final pull alike (the endpoint goes soon after the cut-off, so applying
  the late ones would depend on when they happened to arrive).
- A response for a lead or contact deleted meanwhile is kept as an UnmatchedResponse for
  the administrators; response.deleted removes the answers and leaves a timeline entry;
  invitation.opened only ever sets "opened" (a late one never undoes "completed").
- A backlog (deliveries arriving well after their events, after an outage of the CRM or
  retries) is recorded by the reconciliation pull, a page of responses per request and per
  transaction, brought forward by the first late delivery; the deliveries still queued then
  find their responses recorded and are acknowledged with one lookup and one INSERT, and
  bring the pull forward again for what was submitted after the last pull's end.
"""

from __future__ import annotations

import binascii
import datetime
import functools
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from django.db import IntegrityError, connections, router, transaction
from django.db.models import Exists, JSONField, Q, Subquery
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _
from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError, WebhookVerificationError

from kizuna.crm.integration import client
from kizuna.crm.integration.client import SurveyError
from kizuna.crm.integration.models import (
    Connection,
    ConnectionState,
    IntakeEvent,
    IntakeOutcome,
    Reconciliation,
    ReconciliationKind,
    SurveyInvitation,
    SurveyResponse,
    UnmatchedResponse,
    parse_recipient_reference,
)
from kizuna.crm.integration.services import IntegrationError, call_survey
from kizuna.crm.models import Activity, ActivityKind, Contact, Lead, Organization
from kizuna.identity.models import User
from kizuna.lib.api_errors import ErrorCode
from kizuna.work import leases, wakeup
from kizuna.work.leases import WorkStatus

logger = logging.getLogger(__name__)

# Responses submitted this close to a pull may still be being stored: pulled next time
# (each pull starts RECONCILIATION_OVERLAP before the last one ended, and their deliveries
# come anyway).
RECONCILIATION_MARGIN = datetime.timedelta(seconds=10)
# Each pull starts a little before the last one ended; recording twice is harmless.
RECONCILIATION_OVERLAP = datetime.timedelta(minutes=5)
RECONCILIATION_PAGE_SIZE = 500
# A delivery whose event happened longer ago than this is queued behind others (an outage
# of the CRM, retries): the periodic pull is brought forward to record the backlog in pages.
# Longer than RECONCILIATION_MARGIN, so the pull it brings covers its event.
LATE_DELIVERY = datetime.timedelta(seconds=30)
# A late delivery of an event a pull recorded brings the next pull forward once the last
# one's end (its `until`, RECONCILIATION_MARGIN before it started) is this old: that pull
# covers everything submitted before the last one started.
PULL_AGAIN_AFTER = 2 * RECONCILIATION_MARGIN
# last_event_at is a health figure: refreshed at most this often, so a backlog of
# deliveries does not queue on the connection's row.
LAST_EVENT_RESOLUTION = datetime.timedelta(seconds=5)


@dataclass(frozen=True)
class IntakeAnswer:
    """What the intake answers the Survey service: 2xx acknowledged, anything else retried."""

    status: int
    outcome: IntakeOutcome

    def body(self) -> dict[str, str]:
        return {"outcome": str(self.outcome)}


class BadEvent(ValueError):
    """A signed body that is not a Survey event the CRM can read."""


# --- the intake -----------------------------------------------------------------------------


def receive_webhook(
    *, connection: Connection, body: bytes, headers: Mapping[str, str]
) -> IntakeAnswer:
    """Verify one delivery (Standard Webhooks signature and timestamp) and record its event.

    Bad signature: 401; timestamp outside 5 minutes: 400; both kept for the administrator
    as refused IntakeEvents. A repeated webhook-id is acknowledged and ignored. Every
    verified event is acknowledged, including those after the cut-off (never 410: that
    would stop the deliveries still due from before it).
    """
    headers = {name.lower(): value for name, value in headers.items()}
    event_id = headers.get("webhook-id", "")[:100]
    try:
        Webhook(connection.webhook_secret()).verify(body, headers, json_parse=False)
    except WebhookVerificationError as error:
        stale = "timestamp too" in str(error)
        outcome = IntakeOutcome.STALE_TIMESTAMP if stale else IntakeOutcome.BAD_SIGNATURE
        return _refuse(connection, event_id, outcome, str(error), status=400 if stale else 401)
    except (ValueError, binascii.Error, UnicodeDecodeError, EmptyWebhookSecretError) as error:
        # A malformed signature header, or a connection without a secret.
        return _refuse(connection, event_id, IntakeOutcome.BAD_SIGNATURE, repr(error), status=401)
    try:
        event_type, data, happened_at = _read_event(body)
        if _late(happened_at) and _acknowledged_as_recorded(connection, event_id, event_type, data):
            _touch(connection)
            _catch_up_when_late(connection, happened_at)
            return IntakeAnswer(200, IntakeOutcome.DUPLICATE)
    except BadEvent as error:
        return _refuse(connection, event_id, IntakeOutcome.INVALID, str(error), status=400)
    try:
        with transaction.atomic():
            # The event id is claimed first: a concurrent redelivery waits here, then is a
            # duplicate.
            event = IntakeEvent.objects.create(
                connection=connection,
                organization_id=connection.organization_id,
                event_id=event_id,
                event_type=event_type,
                outcome=IntakeOutcome.RECORDED,
            )
            outcome, detail = HANDLERS[event_type](connection, data, happened_at)
            if outcome != IntakeOutcome.RECORDED or detail:
                event.outcome, event.detail = outcome, detail[:500]
                event.save(update_fields=["outcome", "detail"])
    except IntegrityError:
        outcome = IntakeOutcome.DUPLICATE
    except BadEvent as error:
        return _refuse(connection, event_id, IntakeOutcome.INVALID, str(error), status=400)
    _touch(connection)
    _catch_up_when_late(connection, happened_at)
    return IntakeAnswer(200, outcome)


def _late(happened_at: datetime.datetime | None) -> bool:
    return happened_at is not None and happened_at <= timezone.now() - LATE_DELIVERY


def _acknowledged_as_recorded(
    connection: Connection, event_id: str, event_type: str, data: Mapping[str, Any]
) -> bool:
    """A late response.completed whose response this connection has recorded already (the
    pull of a backlog went ahead of its deliveries, or a redelivery): its event stored as a
    duplicate in one indexed lookup and one INSERT, outside any transaction, before the
    work of recording. True when so; False leaves the event to the whole intake (on time, a
    delivery is almost always the first: it goes there without the extra lookup).

    The event is read under the intake's rules first, so an unreadable one is still refused
    and one that would not be recorded (no CRM reference, another CRM's, after the cut-off)
    keeps its outcome."""
    if event_type != "response.completed":
        return False
    read = _read_completed(connection, data)
    if not isinstance(read, Completed):
        return False
    recorded = SurveyResponse.objects.filter(connection=connection, response_id=read.response_id)
    if not recorded.exists():
        return False
    event = IntakeEvent(
        connection=connection,
        organization_id=connection.organization_id,
        event_id=event_id,
        event_type=event_type,
        outcome=IntakeOutcome.DUPLICATE,
        detail=read.response_id,
    )
    # One statement in autocommit (bulk_create would wrap it in BEGIN and COMMIT); a
    # repeated event id conflicts and is skipped: a duplicate either way.
    database = connections[router.db_for_write(IntakeEvent)]
    fields = [field for field in IntakeEvent._meta.concrete_fields if not field.primary_key]
    columns = ", ".join(database.ops.quote_name(field.column) for field in fields)
    with database.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {database.ops.quote_name(IntakeEvent._meta.db_table)} ({columns}) "  # noqa: S608
            f"VALUES ({', '.join(['%s'] * len(fields))}) ON CONFLICT DO NOTHING",
            [field.get_db_prep_save(field.pre_save(event, add=True), database) for field in fields],
        )
    return True


def _refuse(
    connection: Connection, event_id: str, outcome: IntakeOutcome, detail: str, *, status: int
) -> IntakeAnswer:
    IntakeEvent.objects.create(
        connection=connection,
        organization_id=connection.organization_id,
        event_id=event_id,
        outcome=outcome,
        detail=detail[:500],
    )
    logger.warning("Survey webhook refused for connection %s: %s", connection.pk, detail)
    return IntakeAnswer(status, outcome)


def _touch(connection: Connection) -> None:
    now = timezone.now()
    if connection.last_event_at and connection.last_event_at >= now - LAST_EVENT_RESOLUTION:
        return  # recent enough as the request found it: no UPDATE per event of a backlog
    Connection.objects.filter(
        Q(last_event_at__isnull=True) | Q(last_event_at__lt=now - LAST_EVENT_RESOLUTION),
        pk=connection.pk,
    ).update(last_event_at=now)


def _catch_up_when_late(connection: Connection, happened_at: datetime.datetime | None) -> None:
    """A delivery of an event that happened LATE_DELIVERY ago or more brings the periodic
    reconciliation forward to now: the backlog it belongs to is then recorded a page per
    request instead of a delivery per request.

    - Its event not pulled yet: the pull records it and the backlog around it.
    - Its event pulled already (a pull went ahead of the deliveries): the deliveries queue
      in the order of their events, so what was submitted after the last pull's end waits
      behind this one, to be recorded only as the Survey's outbox reaches it (after the
      whole backlog: 10,000 deliveries take about a minute to acknowledge). Pulled again
      once the last pull's end is PULL_AGAIN_AFTER old (the next pull then covers what was
      submitted up to the moment the last one started), and only while the last pull found
      a backlog (it recorded what delivery had not): one that found nothing ends the chain.
    """
    now = timezone.now()
    if not _late(happened_at) or not connection.is_enabled:
        return
    assert happened_at is not None
    pulled_until = connection.reconciled_until or connection.enabled_at
    if happened_at >= pulled_until:
        behind_a_backlog = Q()
    elif pulled_until < now - PULL_AGAIN_AFTER:
        behind_a_backlog = Q(last_recorded__gt=0)
    else:
        return  # pulled a moment ago: the deliveries of a backlog a pull recorded
    # One statement in autocommit: a late duplicate is acknowledged in a few (see
    # _acknowledged_as_recorded), and the UPDATE is committed before the workers are woken.
    brought = Reconciliation.objects.filter(
        behind_a_backlog,
        connection=connection,
        kind=ReconciliationKind.PERIODIC,
        status=WorkStatus.PENDING,
        next_attempt_at__gt=now,
    ).update(next_attempt_at=now)
    if brought:
        wakeup.notify(Reconciliation)


def _read_event(body: bytes) -> tuple[str, dict[str, Any], datetime.datetime | None]:
    """(type, data, when the event happened: None when the envelope does not say)."""
    try:
        event = json.loads(body)
    except ValueError as error:
        raise BadEvent(f"not JSON: {error}") from None
    if not isinstance(event, dict) or not isinstance(event.get("data"), dict):
        raise BadEvent("not an event: an object with type and data is expected")
    event_type = event.get("type")
    if event_type not in HANDLERS:
        raise BadEvent(f"unknown event type {event_type!r}")
    happened_at = _moment(event, "timestamp") if event.get("timestamp") is not None else None
    return str(event_type), event["data"], happened_at


# --- recording ------------------------------------------------------------------------------


def _moment(data: Mapping[str, Any], name: str) -> datetime.datetime:
    value = data.get(name)
    parsed = parse_datetime(str(value)) if isinstance(value, str) else None
    if parsed is None or timezone.is_naive(parsed):
        raise BadEvent(f"{name} is not a date and time with a time zone: {value!r}")
    return parsed


def _survey(data: Mapping[str, Any]) -> tuple[int, str, str]:
    survey = data.get("survey")
    try:
        assert isinstance(survey, dict)
        portal = survey.get("portal") or {}
        return int(survey["id"]), str(survey.get("title", ""))[:300], str(portal.get("name", ""))
    except (AssertionError, KeyError, TypeError, ValueError):
        raise BadEvent("survey is missing or not an object with an id") from None


def _answers(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The answers as shown in the CRM: question, stored value, text, and for a matrix its
    rows as [row label, column label] pairs."""
    answers = data.get("answers")
    if not isinstance(answers, list):
        raise BadEvent("answers is not a list")
    kept = []
    for answer in answers:
        try:
            question = answer["question"]
            item = {
                "question_id": int(question["id"]),
                "kind": str(question["kind"]),
                "text": str(question.get("text", "")),
                "position": int(question.get("position", 0)),
                "value": answer.get("value"),
                "display": str(answer.get("display", "")),
            }
        except (KeyError, TypeError, ValueError):
            raise BadEvent("an answer is not an object with its question") from None
        if item["kind"] == "matrix":
            item["rows"] = matrix_rows(answer.get("rows"), item["value"], item["display"])
        kept.append(item)
    return sorted(kept, key=lambda item: (item["position"], item["question_id"]))


def matrix_rows(rows: Any, value: Any, display: str) -> list[list[str]]:
    """[[row label, column label], ...] of a matrix answer.

    The Survey service sends the labels as data (`rows`: [{"key", "label", "column": {"key",
    "label"}}]). Events sent before it did (still in its outbox, or replayed) have only
    `display`, "row: column; row: column" in the order of the value's rows: that is read
    back, and when it cannot be (a label holding "; "), the keys stand in for the labels.
    """
    if isinstance(rows, list):
        try:
            return [[str(row["label"]), str(row["column"]["label"])] for row in rows]
        except (KeyError, TypeError):
            raise BadEvent("a matrix row is not an object with its label and column") from None
    if not isinstance(value, dict):
        return []
    parts = display.split("; ") if display else []
    if len(parts) == len(value) and all(": " in part for part in parts):
        return [list(part.split(": ", 1)) for part in parts]
    return [[str(row), str(column)] for row, column in value.items()]


def _timeline(
    *,
    organization_id: int,
    lead_id: int | None,
    contact_id: int | None,
    kind: str,
    summary: str,
    at: datetime.datetime,
    data: Mapping[str, Any],
) -> None:
    Activity.objects.create(
        organization_id=organization_id,
        lead_id=lead_id,
        contact_id=contact_id,
        kind=kind,
        summary=summary[:500],
        data=dict(data),
        created_at=at,
    )


def _our_reference(
    connection: Connection, reference: str, *, keys: frozenset[str] | None = None
) -> tuple[str, int] | Literal[False] | None:
    """("lead" | "contact", id) for a reference of a connection of this organization;
    None for no CRM reference; False for one of another CRM or organization. `keys`: the
    reference keys of the organization's connections, when the caller has read them."""
    parsed = parse_recipient_reference(reference or "")
    if parsed is None:
        return None
    key, kind, pk = parsed
    if key == connection.reference_key:
        return kind, pk
    if keys is not None:
        return (kind, pk) if key in keys else False
    if not Connection.objects.filter(
        organization_id=connection.organization_id, reference_key=key
    ).exists():
        return False
    return kind, pk


def _reference_keys(connection: Connection) -> frozenset[str]:
    return frozenset(
        Connection.objects.filter(organization_id=connection.organization_id).values_list(
            "reference_key", flat=True
        )
    )


def _record_of(organization_id: int, kind: str, pk: int) -> Lead | Contact | None:
    model: type[Lead] | type[Contact] = Lead if kind == "lead" else Contact
    return model.objects.of(organization_id).filter(pk=pk).first()


def _record_ids(record: Lead | Contact) -> tuple[int | None, int | None]:
    """(lead id, contact id) to store: a converted lead's entries belong to its contact too."""
    if isinstance(record, Lead):
        return record.pk, record.converted_contact_id
    return None, record.pk


def _invited(kind: str, pk: int) -> Q:
    """The invitations sent to the record a reference names: through the record's own
    index, where the organization's alone reads every invitation it ever sent."""
    return Q(lead_id=pk) if kind == "lead" else Q(contact_id=pk)


def _recipient_of(
    connection: Connection,
    kind: str,
    pk: int,
    *,
    response_id: str,
    survey_id: int,
    reference: str,
) -> tuple[Lead | Contact | None, bool, int | None]:
    """The lead or contact, whether this response is recorded already and the id of the
    invitation it answers, in one query: a backlog is recorded one delivery per request, and
    each round trip to the database is a share of its rate."""
    organization_id = connection.organization_id
    recorded = SurveyResponse.objects.filter(connection=connection, response_id=response_id)
    invitation = (
        SurveyInvitation.objects.of(organization_id)
        .filter(_invited(kind, pk), survey_id=survey_id, recipient_reference=reference)
        .order_by("-created_at")
        .values("pk")[:1]
    )
    model: type[Lead] | type[Contact] = Lead if kind == "lead" else Contact
    record = (
        model.objects.of(organization_id)
        .filter(pk=pk)
        .annotate(response_recorded=Exists(recorded), invitation_pk=Subquery(invitation))
        .first()
    )
    if record is None:
        return None, recorded.exists(), None
    return record, record.response_recorded, record.invitation_pk


@dataclass(frozen=True)
class Completed:
    """A response.completed `data` read under the intake's rules: a response of this
    organization's recipient, submitted before any cut-off, ready to be recorded."""

    data: Mapping[str, Any]
    response_id: str
    reference: str
    kind: str  # "lead" or "contact"
    pk: int
    survey_id: int
    survey_title: str
    submitted_at: datetime.datetime
    started_at: datetime.datetime | None
    answers: list[dict[str, Any]]

    def activity(
        self, *, organization_id: int, lead_id: int | None, contact_id: int | None
    ) -> Activity:
        """Its entry on the timeline."""
        return Activity(
            organization_id=organization_id,
            lead_id=lead_id,
            contact_id=contact_id,
            kind=ActivityKind.SURVEY_RESPONDED,
            summary=self.survey_title[:500],
            data={"response_id": self.response_id, "survey_id": self.survey_id},
            created_at=self.submitted_at,
        )


def _read_completed(
    connection: Connection, data: Mapping[str, Any], *, keys: frozenset[str] | None = None
) -> Completed | tuple[IntakeOutcome, str]:
    """`data` read under the intake's rules, or the outcome of a response not to record
    (no CRM reference, another CRM's, after the cut-off). BadEvent when it is unreadable."""
    response_id = str(data.get("response_id", ""))[:64]
    if not response_id:
        raise BadEvent("response_id is missing")
    reference = str(data.get("recipient_reference") or "")
    ours = _our_reference(connection, reference, keys=keys)
    if ours is None:
        return IntakeOutcome.NO_REFERENCE, ""
    if ours is False:
        return IntakeOutcome.OTHER_CONNECTION, reference[:200]
    submitted_at = _moment(data, "submitted_at")
    if not connection.accepts_submission_at(submitted_at):
        return IntakeOutcome.AFTER_CUT_OFF, submitted_at.isoformat()
    survey_id, survey_title, _portal_name = _survey(data)
    answers = _answers(data)
    kind, pk = ours
    return Completed(
        data=data,
        response_id=response_id,
        reference=reference,
        kind=kind,
        pk=pk,
        survey_id=survey_id,
        survey_title=survey_title,
        submitted_at=submitted_at,
        started_at=_moment(data, "started_at") if data.get("started_at") else None,
        answers=answers,
    )


def record_response(connection: Connection, data: Mapping[str, Any]) -> tuple[IntakeOutcome, str]:
    """Record a response.completed `data` (from a webhook or a pull); the outcome and why.

    Runs in the caller's transaction. record_responses() does the same for a page.
    """
    read = _read_completed(connection, data)
    if not isinstance(read, Completed):
        return read
    response_id = read.response_id
    record, recorded, invitation_id = _recipient_of(
        connection,
        read.kind,
        read.pk,
        response_id=response_id,
        survey_id=read.survey_id,
        reference=read.reference,
    )
    if recorded:
        return IntakeOutcome.DUPLICATE, response_id
    if record is None:
        return _keep_unmatched(
            connection,
            response_id,
            read.reference,
            read.survey_id,
            read.survey_title,
            read.submitted_at,
            read.answers,
        )
    lead_id, contact_id = _record_ids(record)
    stored = _store_response(
        _completed_row(
            connection, read, lead_id=lead_id, contact_id=contact_id, invitation_id=invitation_id
        )
    )
    if not stored:
        return IntakeOutcome.DUPLICATE, response_id
    if invitation_id is not None:
        SurveyInvitation.objects.filter(pk=invitation_id, completed_at__isnull=True).update(
            completed_at=read.submitted_at
        )
    read.activity(
        organization_id=connection.organization_id, lead_id=lead_id, contact_id=contact_id
    ).save(force_insert=True)
    return IntakeOutcome.RECORDED, ""


def record_responses(connection: Connection, items: Iterable[Mapping[str, Any]]) -> int:
    """Record a page of response.completed `data` (a reconciliation pull) under the rules of
    record_response(), with a few queries for the whole page and one transaction; how many
    were new (recorded, or kept unmatched). Unreadable items are logged and skipped.

    A response a concurrent delivery records first is left to it. A lead or contact deleted
    while the page is written makes it fail: the page is then recorded one response at a
    time, as deliveries are (which keeps that one as unmatched).
    """
    keys = _reference_keys(connection)
    page: dict[str, Completed] = {}
    for data in items:
        try:
            read = _read_completed(connection, data, keys=keys)
        except BadEvent as error:
            logger.warning("Reconciliation skipped a response it cannot read: %s", error)
            continue
        if isinstance(read, Completed):
            page.setdefault(read.response_id, read)
    if not page:
        return 0
    try:
        with transaction.atomic():
            return _write_page(connection, page)
    except IntegrityError:
        found = 0
        for read in page.values():
            with transaction.atomic():
                outcome, _detail = record_response(connection, read.data)
            found += outcome in (IntakeOutcome.RECORDED, IntakeOutcome.UNMATCHED)
        return found


def _write_page(connection: Connection, page: dict[str, Completed]) -> int:
    """record_responses() in bulk, in the caller's transaction."""
    organization_id = connection.organization_id
    recorded = set(
        SurveyResponse.objects.filter(
            connection=connection, response_id__in=list(page)
        ).values_list("response_id", flat=True)
    )
    reads = [read for read in page.values() if read.response_id not in recorded]
    if not reads:
        return 0
    lead_pks = {read.pk for read in reads if read.kind == "lead"}
    contact_pks = {read.pk for read in reads if read.kind == "contact"}
    # A lead's converted contact, by lead; the contacts that exist.
    leads = dict(
        Lead.objects.of(organization_id)
        .filter(pk__in=lead_pks)
        .values_list("pk", "converted_contact_id")
    )
    contacts = set(
        Contact.objects.of(organization_id).filter(pk__in=contact_pks).values_list("pk", flat=True)
    )
    # The newest invitation each response answers (record_response's _recipient_of).
    invitations: dict[tuple[str, int, int, str], int] = {}
    for pk, invited_lead, invited_contact, survey_id, reference in (
        SurveyInvitation.objects.of(organization_id)
        .filter(Q(lead_id__in=lead_pks) | Q(contact_id__in=contact_pks))
        .filter(survey_id__in={read.survey_id for read in reads})
        .order_by("created_at", "pk")
        .values_list("pk", "lead_id", "contact_id", "survey_id", "recipient_reference")
    ):
        if invited_lead is not None:
            invitations[("lead", invited_lead, survey_id, reference)] = pk
        if invited_contact is not None:
            invitations[("contact", invited_contact, survey_id, reference)] = pk
    responses, unmatched, activities = [], [], []
    answered: list[tuple[int, datetime.datetime, str]] = []  # invitation, when, response
    lead_id: int | None
    contact_id: int | None
    for read in reads:
        if read.kind == "lead" and read.pk in leads:
            lead_id, contact_id = read.pk, leads[read.pk]
        elif read.kind == "contact" and read.pk in contacts:
            lead_id, contact_id = None, read.pk
        else:
            unmatched.append(
                UnmatchedResponse(
                    connection=connection,
                    organization_id=organization_id,
                    response_id=read.response_id,
                    recipient_reference=read.reference[:200],
                    survey_id=read.survey_id,
                    survey_title=read.survey_title,
                    submitted_at=read.submitted_at,
                    answers=read.answers,
                )
            )
            continue
        invitation_id = invitations.get((read.kind, read.pk, read.survey_id, read.reference))
        responses.append(
            _completed_row(
                connection,
                read,
                lead_id=lead_id,
                contact_id=contact_id,
                invitation_id=invitation_id,
            )
        )
        if invitation_id is not None:
            answered.append((invitation_id, read.submitted_at, read.response_id))
        activities.append(
            read.activity(organization_id=organization_id, lead_id=lead_id, contact_id=contact_id)
        )
    # A delivery of the same response may commit meanwhile: its row is kept, this one skipped.
    new = _insert_new(responses)
    kept = _insert_new(unmatched)
    completed: dict[int, datetime.datetime] = {}
    for invitation_id, submitted_at, response_id in answered:
        if response_id in new:
            completed.setdefault(invitation_id, submitted_at)  # the first response completes it
    _complete_invitations(completed)
    Activity.objects.bulk_create(
        activity for activity in activities if activity.data["response_id"] in new
    )
    return len(new) + len(kept)


def _insert_new(rows: list[SurveyResponse] | list[UnmatchedResponse]) -> set[str]:
    """INSERT `rows` (new rows of one model) in one statement each 500, skipping those the
    connection has already (ON CONFLICT DO NOTHING: on PostgreSQL it waits for a concurrent
    insert of the same response to commit, then skips it); the response ids inserted."""
    if not rows:
        return set()
    model = type(rows[0])
    database = connections[router.db_for_write(model)]
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    table = database.ops.quote_name(model._meta.db_table)
    columns = ", ".join(database.ops.quote_name(field.column) for field in fields)
    returning = database.ops.quote_name("response_id")
    inserted: set[str] = set()
    with database.cursor() as cursor:
        for start in range(0, len(rows), RECONCILIATION_PAGE_SIZE):
            part = rows[start : start + RECONCILIATION_PAGE_SIZE]
            if database.vendor == "postgresql":
                # One array a column, as bulk_create writes many rows there: a short
                # statement whatever the number of rows. A JSON column goes as one JSON
                # document: quoting each answer's every '"' as an array element cost the
                # client more than the database's whole INSERT.
                columns_sql: list[str] = []
                params: list[Any] = []
                for field in fields:
                    column = [field.pre_save(row, add=True) for row in part]
                    if isinstance(field, JSONField):
                        columns_sql.append("jsonb_array_elements(%s::jsonb)")
                        params.append(json.dumps(column, cls=field.encoder))
                    else:
                        db_type = field.db_type(database).split("(")[0]  # type: ignore[union-attr]
                        columns_sql.append(f"UNNEST((%s)::{db_type}[])")
                        params.append([field.get_db_prep_save(value, database) for value in column])
                rows_sql = f"SELECT * FROM ROWS FROM ({', '.join(columns_sql)})"  # noqa: S608
            else:
                values = [
                    [
                        field.get_db_prep_save(field.pre_save(row, add=True), database)
                        for row in part
                    ]
                    for field in fields
                ]
                row_sql = "(" + ", ".join(["%s"] * len(fields)) + ")"
                rows_sql = "VALUES " + ", ".join([row_sql] * len(part))
                params = [column[n] for n in range(len(part)) for column in values]
            cursor.execute(
                f"INSERT INTO {table} ({columns}) {rows_sql} "
                f"ON CONFLICT DO NOTHING RETURNING {returning}",
                params,
            )
            inserted.update(response_id for (response_id,) in cursor.fetchall())
    return inserted


def _complete_invitations(completed: dict[int, datetime.datetime]) -> None:
    """Each invitation's completed_at, unless it is set already, in one UPDATE from a list of
    values (a Case of 500 Whens took the ORM over a second to compile on the loaded machine;
    on PostgreSQL two arrays, where 1,000 placeholders took the client a third of a page's
    time to parse)."""
    if not completed:
        return
    database = connections[router.db_for_write(SurveyInvitation)]
    field = SurveyInvitation._meta.get_field("completed_at")
    ids = list(completed)
    moments = [field.get_db_prep_save(at, database) for at in completed.values()]
    table = database.ops.quote_name(SurveyInvitation._meta.db_table)
    if database.vendor == "postgresql":
        values_sql = "SELECT * FROM UNNEST((%s)::bigint[], (%s)::timestamptz[])"
        params: list[Any] = [ids, moments]
    else:
        values_sql = "VALUES " + ", ".join(["(%s, %s)"] * len(ids))
        params = [value for pair in zip(ids, moments, strict=True) for value in pair]
    with database.cursor() as cursor:
        cursor.execute(
            f"WITH completed (id, moment) AS ({values_sql}) "  # noqa: S608
            f"UPDATE {table} SET completed_at = completed.moment FROM completed "
            f"WHERE {table}.id = completed.id AND {table}.completed_at IS NULL",
            params,
        )


def _store_response(row: SurveyResponse) -> bool:
    """Write one SurveyResponse row (from _response_row): False when the connection has it
    already (a concurrent arrival won)."""
    try:
        with transaction.atomic():
            row.save(force_insert=True)
    except IntegrityError:
        return False
    return True


def _completed_row(
    connection: Connection,
    read: Completed,
    *,
    lead_id: int | None,
    contact_id: int | None,
    invitation_id: int | None,
) -> SurveyResponse:
    """The SurveyResponse of a response read under the intake's rules, not saved yet."""
    return _response_row(
        connection,
        read.data,
        lead_id=lead_id,
        contact_id=contact_id,
        invitation_id=invitation_id,
        submitted_at=read.submitted_at,
        started_at=read.started_at,
        answers=read.answers,
    )


def _response_row(
    connection: Connection,
    data: Mapping[str, Any],
    *,
    lead_id: int | None,
    contact_id: int | None,
    submitted_at: datetime.datetime,
    answers: list[dict[str, Any]],
    invitation_id: int | None = None,
    started_at: datetime.datetime | None = None,
    deleted_at: datetime.datetime | None = None,
) -> SurveyResponse:
    """The SurveyResponse of an event's (or a pull's) `data`, not saved yet."""
    survey_id, survey_title, portal_name = _survey(data)
    return SurveyResponse(
        connection=connection,
        organization_id=connection.organization_id,
        lead_id=lead_id,
        contact_id=contact_id,
        invitation_id=invitation_id,
        response_id=str(data["response_id"])[:64],
        recipient_reference=str(data.get("recipient_reference") or "")[:200],
        survey_id=survey_id,
        survey_title=survey_title,
        portal_name=portal_name[:200],
        language=str(data.get("language") or "")[:16],
        started_at=started_at,
        submitted_at=submitted_at,
        answers=answers,
        deleted_at=deleted_at,
    )


def _keep_unmatched(
    connection: Connection,
    response_id: str,
    reference: str,
    survey_id: int,
    survey_title: str,
    submitted_at: datetime.datetime,
    answers: list[dict[str, Any]],
) -> tuple[IntakeOutcome, str]:
    try:
        with transaction.atomic():
            UnmatchedResponse.objects.create(
                connection=connection,
                organization_id=connection.organization_id,
                response_id=response_id,
                recipient_reference=reference[:200],
                survey_id=survey_id,
                survey_title=survey_title,
                submitted_at=submitted_at,
                answers=answers,
            )
    except IntegrityError:
        return IntakeOutcome.DUPLICATE, response_id
    return IntakeOutcome.UNMATCHED, reference[:200]


def delete_response(
    connection: Connection, data: Mapping[str, Any], *, deleted_at: datetime.datetime | None = None
) -> tuple[IntakeOutcome, str]:
    """response.deleted: the answers leave the CRM, a timeline entry says so.

    `deleted_at`, when the Survey service deleted it (a webhook's event time), else
    `data["deleted_at"]` (a pull's item). D6: a deletion made at or after the cut-off is
    acknowledged and not applied, as a response submitted then is not recorded.
    A deletion that arrives before its response leaves an empty row behind, so the late
    response.completed finds it and records nothing.
    """
    response_id = str(data.get("response_id", ""))[:64]
    if not response_id:
        raise BadEvent("response_id is missing")
    reference = str(data.get("recipient_reference") or "")
    ours = _our_reference(connection, reference)
    if ours is None:
        return IntakeOutcome.NO_REFERENCE, ""
    if ours is False:
        return IntakeOutcome.OTHER_CONNECTION, reference[:200]
    if deleted_at is None:
        deleted_at = _moment(data, "deleted_at")
    if not connection.accepts_submission_at(deleted_at):
        return IntakeOutcome.AFTER_CUT_OFF, deleted_at.isoformat()
    organization_id = connection.organization_id
    UnmatchedResponse.objects.of(organization_id).filter(response_id=response_id).update(
        answers=[], dismissed_at=timezone.now()
    )
    recorded = list(
        SurveyResponse.objects.of(organization_id)
        .filter(response_id=response_id, deleted_at__isnull=True)
        .select_for_update()
    )
    if not recorded:
        if SurveyResponse.objects.of(organization_id).filter(response_id=response_id).exists():
            return IntakeOutcome.DUPLICATE, response_id
        kind, pk = ours
        record = _record_of(organization_id, kind, pk)
        lead_id, contact_id = _record_ids(record) if record is not None else (None, None)
        stored = _store_response(
            _response_row(
                connection,
                data,
                lead_id=lead_id,
                contact_id=contact_id,
                submitted_at=_moment(data, "submitted_at"),
                answers=[],
                deleted_at=deleted_at,
            )
        )
        if not stored:
            return IntakeOutcome.DUPLICATE, response_id
        return IntakeOutcome.RECORDED, "deleted before it was recorded"
    for response in recorded:
        response.answers, response.deleted_at = [], deleted_at
        response.save(update_fields=["answers", "deleted_at"])
        _timeline(
            organization_id=organization_id,
            lead_id=response.lead_id,
            contact_id=response.contact_id,
            kind=ActivityKind.SURVEY_RESPONSE_DELETED,
            summary=response.survey_title,
            at=deleted_at,
            data={"response_id": response_id, "survey_id": response.survey_id},
        )
    return IntakeOutcome.RECORDED, "deleted"


def record_opened(connection: Connection, data: Mapping[str, Any]) -> tuple[IntakeOutcome, str]:
    """invitation.opened: the invitation is marked opened once; nothing else changes."""
    reference = str(data.get("recipient_reference") or "")
    ours = _our_reference(connection, reference)
    if ours is None:
        return IntakeOutcome.NO_REFERENCE, ""
    if ours is False:
        return IntakeOutcome.OTHER_CONNECTION, reference[:200]
    opened_at = _moment(data, "opened_at")
    if not connection.accepts_submission_at(opened_at):
        return IntakeOutcome.AFTER_CUT_OFF, opened_at.isoformat()
    survey_id, survey_title, _portal = _survey(data)
    kind, pk = ours
    invitation = (
        SurveyInvitation.objects.of(connection.organization_id)
        .filter(_invited(kind, pk), survey_id=survey_id, recipient_reference=reference)
        .select_related("lead")
        .order_by("-created_at")
        .first()
    )
    if invitation is None:
        return IntakeOutcome.UNMATCHED, reference[:200]
    updated = SurveyInvitation.objects.filter(pk=invitation.pk, opened_at__isnull=True).update(
        opened_at=opened_at
    )
    if not updated:
        return IntakeOutcome.DUPLICATE, reference[:200]
    contact_id = invitation.contact_id
    if contact_id is None and invitation.lead is not None:
        contact_id = invitation.lead.converted_contact_id
    if invitation.lead_id is not None or contact_id is not None:
        _timeline(
            organization_id=connection.organization_id,
            lead_id=invitation.lead_id,
            contact_id=contact_id,
            kind=ActivityKind.SURVEY_OPENED,
            summary=survey_title or invitation.survey_title,
            at=opened_at,
            data={"survey_id": survey_id},
        )
    return IntakeOutcome.RECORDED, ""


def _deleted(
    connection: Connection, data: Mapping[str, Any], happened_at: datetime.datetime | None
) -> tuple[IntakeOutcome, str]:
    if happened_at is None:
        raise BadEvent("timestamp (when the response was deleted) is missing")
    return delete_response(connection, data, deleted_at=happened_at)


# (connection, data, when the event happened) -> (outcome, detail)
Handler = Callable[
    [Connection, Mapping[str, Any], datetime.datetime | None], tuple[IntakeOutcome, str]
]
HANDLERS: dict[str, Handler] = {
    "response.completed": lambda connection, data, _happened_at: record_response(connection, data),
    "response.deleted": _deleted,
    "invitation.opened": lambda connection, data, _happened_at: record_opened(connection, data),
}


# --- reconciliation -------------------------------------------------------------------------


def _pull(
    credentials: client.Credentials, *, since: datetime.datetime, cursor: str | None
) -> client.Page[dict[str, Any]]:
    return client.list_responses(
        credentials, since=since, cursor=cursor, limit=RECONCILIATION_PAGE_SIZE
    )


def _answer_to(
    asked: Future[client.Page[dict[str, Any]]], _credentials: client.Credentials
) -> client.Page[dict[str, Any]]:
    """The page asked for in another thread (its SurveyError raised here, in call_survey)."""
    return asked.result()


def _pull_deletions(
    credentials: client.Credentials, *, since: datetime.datetime, cursor: str | None
) -> client.DeletionPage:
    return client.list_deleted_responses(
        credentials, since=since, cursor=cursor, limit=RECONCILIATION_PAGE_SIZE
    )


def reconcile(*, connection: Connection, until: datetime.datetime) -> int:
    """Pull the responses submitted up to `until` that were not recorded yet (GET /responses),
    and the deletions made up to `until` (GET /responses/deleted), and apply them under the
    intake's rules; how many were new. SurveyError when the Survey service cannot be asked."""
    if connection.reconciled_until is None:
        # D6: the first pull starts where the connection was enabled. Five minutes earlier
        # would reach into a gap after an earlier connection was disabled, and a response
        # through that connection's link is recorded by this one.
        since = min(connection.enabled_at, until)
    else:
        since = min(connection.reconciled_until, until) - RECONCILIATION_OVERLAP
    found = _reconcile_responses(connection, since=since, until=until)
    found += _reconcile_deletions(connection, since=since, until=until)
    now = timezone.now()
    Connection.objects.filter(
        Q(reconciled_until__isnull=True) | Q(reconciled_until__lt=until), pk=connection.pk
    ).update(reconciled_until=until)
    Connection.objects.filter(pk=connection.pk).update(last_reconciled_at=now)
    return found


def _reconcile_deletions(
    connection: Connection, *, since: datetime.datetime, until: datetime.datetime
) -> int:
    """response.deleted that delivery missed: the answers leave the CRM as if it had come."""
    found = 0
    cursor: str | None = None
    while True:
        page = call_survey(
            connection, functools.partial(_pull_deletions, since=since, cursor=cursor)
        )
        if page.complete_since > since:
            logger.warning(
                "Connection %s last reconciled before %s: deletions older than that are no "
                "longer listed by the Survey service",
                connection.pk,
                page.complete_since.isoformat(),
            )
        for item in page.items:
            try:
                if _moment(item, "deleted_at") >= until:
                    return found
                with transaction.atomic():
                    outcome, _detail = delete_response(connection, item)
            except BadEvent as error:
                logger.warning("Reconciliation skipped a deletion it cannot read: %s", error)
                continue
            if outcome == IntakeOutcome.RECORDED:
                found += 1
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def _reconcile_responses(
    connection: Connection, *, since: datetime.datetime, until: datetime.datetime
) -> int:
    """The responses submitted from `since` to `until`, recorded a page per transaction.

    The next page is asked for while this one is recorded: the Survey service (another
    process, or another machine) builds it meanwhile, instead of the two waiting in turn.
    """
    found = 0
    credentials = connection.credentials()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="reconcile") as asker:
        asked = asker.submit(_pull, credentials, since=since, cursor=None)
        while True:
            page = call_survey(connection, functools.partial(_answer_to, asked))
            before: list[dict[str, Any]] = []
            reached_until = False
            for item in page.items:
                try:
                    reached_until = _moment(item, "submitted_at") >= until
                except BadEvent as error:
                    logger.warning("Reconciliation skipped a response it cannot read: %s", error)
                    continue
                if reached_until:
                    break
                before.append(item)
            if not reached_until and page.next_cursor is not None:
                asked = asker.submit(_pull, credentials, since=since, cursor=page.next_cursor)
            found += record_responses(connection, before)
            if reached_until or page.next_cursor is None:
                return found


def request_reconciliation(*, organization: Organization, requested_by: User) -> Reconciliation:
    """ "Run now" of an administrator: a reconciliation the worker runs at once."""
    connection = Connection.objects.of(organization).current().first()
    if connection is None:
        raise IntegrationError(
            "not_set_up", _("The Survey integration is not set up for this organization.")
        )
    if not connection.is_enabled:
        raise IntegrationError(
            "needs_reconnection",
            _("Reconnect with the new SC key first: the Survey service refuses the stored one."),
        )
    return Reconciliation.objects.create(
        connection=connection, kind=ReconciliationKind.REQUESTED, requested_by=requested_by
    )


def run_reconciliation(row: Reconciliation) -> None:
    """The worker's handler of Reconciliation rows (safe to run twice)."""
    connection = Connection.objects.get(pk=row.connection_id)
    now = timezone.now()
    if row.kind == ReconciliationKind.FINAL:
        _finish_disabled(row, connection)
        return
    if row.kind == ReconciliationKind.PERIODIC and connection.state == ConnectionState.DISABLED:
        leases.mark_done(row)  # the FINAL row takes over
        return
    if not connection.is_enabled:
        error = str(client.MESSAGES[ErrorCode.REVOKED_KEY])
        _after_run(row, error=error, recorded=0, now=now)
        return
    try:
        recorded = reconcile(connection=connection, until=now - RECONCILIATION_MARGIN)
    except SurveyError as error:
        _after_run(row, error=f"{error.code}: {error.message}", recorded=0, now=now)
        return
    _after_run(row, error="", recorded=recorded, now=now)


def _after_run(row: Reconciliation, *, error: str, recorded: int, now: datetime.datetime) -> None:
    if row.kind == ReconciliationKind.PERIODIC:
        # The periodic row never ends while its connection is in use: a failure waits for
        # the next turn (the Survey service may be down for hours).
        leases.update_if_held(
            row,
            status=leases.WorkStatus.PENDING,
            leased_until=None,
            next_attempt_at=now + Reconciliation.every,
            attempts=0,
            last_error=error[:4000],
            last_run_at=now,
            last_recorded=recorded,
        )
    elif error:
        leases.mark_failed(row, error=error, retry=False, last_run_at=now)
    else:
        leases.mark_done(row, last_run_at=now, last_recorded=recorded)


def _finish_disabled(row: Reconciliation, connection: Connection) -> None:
    """After the cut-off: the last pull up to it, then the webhook endpoint goes.

    A key the Survey service refuses (regenerated, K2; its owner gone or no longer an
    administrator) stops the work at once: waiting never brings it back. The settings page
    then asks for a new key of the account, or to finish without the Survey service.
    """
    now = timezone.now()
    if connection.finished_without_survey_at is not None:
        leases.mark_done(row, last_run_at=now)
        return
    try:
        recorded = 0
        if connection.final_reconciliation_done_at is None:
            assert connection.disabled_at is not None
            recorded = reconcile(connection=connection, until=connection.disabled_at)
            Connection.objects.filter(pk=connection.pk).update(final_reconciliation_done_at=now)
        if connection.webhook_endpoint_deleted_at is None:
            if connection.webhook_endpoint_id is not None:
                endpoint_id = connection.webhook_endpoint_id

                def delete(credentials: client.Credentials) -> None:
                    client.delete_webhook_endpoint(credentials, endpoint_id=endpoint_id)

                try:
                    call_survey(connection, delete)
                except SurveyError as error:
                    if error.code != ErrorCode.NOT_FOUND:
                        raise
            Connection.objects.filter(pk=connection.pk).update(webhook_endpoint_deleted_at=now)
    except SurveyError as error:
        leases.mark_failed(
            row,
            error=f"{error.code}: {error.message}",
            retry=not error.is_credential_error,
            last_run_at=now,
        )
        return
    leases.mark_done(row, last_run_at=now, last_recorded=recorded)
