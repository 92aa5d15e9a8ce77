"""Writes of the public survey pages: the invitation lifecycle and submitting a response.

Every write that other systems must hear about publishes its webhook event in
the same transaction as the rows it describes (DESIGN.md §3, transactional
outbox): a response is never stored without its delivery being enqueued.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from kizuna.lib import prepared
from kizuna.survey.models import (
    Answer,
    HeldReason,
    HeldSubmissionCount,
    Invitation,
    Question,
    Response,
    Survey,
)
from kizuna.survey.results.services import count_response, counted, response_counting_insert
from kizuna.survey.webhooks.services import (
    invitation_payload,
    publish_event,
    response_payload,
    subscribed_endpoints,
)


class SubmissionRefused(Exception):
    """The survey or invitation does not accept this submission; nothing was stored."""


class SurveyClosed(SubmissionRefused):
    pass


class InvitationExpired(SubmissionRefused):
    pass


class AlreadyAnswered(SubmissionRefused):
    pass


class SurveyFull(SubmissionRefused):
    """The survey has its maximum number of responses (Survey.max_responses)."""


class FormSentTwice(SubmissionRefused):
    """The shared link's form with this signed start was already sent and stored."""


class HourlyCeilingReached(SubmissionRefused):
    """The survey had its maximum of responses within the last hour; one more fits after
    `wait_seconds`."""

    def __init__(self, wait_seconds: int) -> None:
        super().__init__(wait_seconds)
        self.wait_seconds = wait_seconds


HOUR = datetime.timedelta(hours=1)


def survey_is_full(survey: Survey) -> bool:
    return (
        survey.max_responses is not None
        and Response.objects.filter(survey=survey).count() >= survey.max_responses
    )


def _check_ceilings(survey: Survey, now: datetime.datetime) -> None:
    """Refuse a response through the shared link past the survey's ceilings.

    Runs in the submitting transaction with the survey's row locked, so that concurrent
    submissions are counted one after the other and a ceiling is never passed.
    """
    list(Survey.objects.select_for_update().filter(pk=survey.pk).values_list("pk", flat=True))
    if survey_is_full(survey):
        raise SurveyFull
    ceiling = survey.max_responses_per_hour
    if ceiling is None:
        return
    recent = list(
        Response.objects.filter(survey=survey, submitted_at__gt=now - HOUR)
        .order_by("-submitted_at")
        .values_list("submitted_at", flat=True)[:ceiling]
    )
    if len(recent) >= ceiling:
        # A place comes free when the oldest of the last `ceiling` responses is an hour old.
        raise HourlyCeilingReached(max(math.ceil((recent[-1] + HOUR - now).total_seconds()), 1))


def invitation_is_expired(invitation: Invitation) -> bool:
    return invitation.expires_at is not None and invitation.expires_at <= timezone.now()


def record_invitation_opened(*, invitation: Invitation) -> bool:
    """Stamp the first opening of an invitation link and tell subscribers, once.

    A conditional UPDATE decides who was first, so two tabs opened together
    publish one event.
    """
    now = timezone.now()
    with transaction.atomic():
        first = bool(
            Invitation.objects.filter(pk=invitation.pk, opened_at__isnull=True).update(
                opened_at=now
            )
        )
        if first:
            invitation.opened_at = now
            publish_event(
                account=invitation.survey.portal.account,
                event_type="invitation.opened",
                payload=invitation_payload(invitation),
            )
    return first


def record_invitation_started(*, invitation: Invitation) -> None:
    """Stamp when the invited person first moved past a page of the survey."""
    now = timezone.now()
    if Invitation.objects.filter(pk=invitation.pk, started_at__isnull=True).update(started_at=now):
        invitation.started_at = now


def submit_response(
    *,
    survey: Survey,
    invitation: Invitation | None,
    answers: Mapping[Question, Any],
    language: str,
    started_at: datetime.datetime | None = None,
    start_nonce: str | None = None,
) -> Response:
    """Store one completed response with its answers and enqueue `response.completed`.

    `answers` holds already validated values (validation.validate_answer), None
    or missing for an unanswered optional question. An invitation is claimed
    with a conditional UPDATE of its `completed_at`: under concurrent submits
    the database lets exactly one transaction set it, whatever the survey's
    anonymity (an anonymous response keeps no link to the invitation, so the
    one-to-one column cannot be what guards it). Through the shared link
    (no invitation) the survey's ceilings apply: SurveyFull, HourlyCeilingReached; and the
    form's `start_nonce` is stored, unique: the same form sent again is FormSentTwice.
    """
    now = timezone.now()
    if not survey.accepts_responses():
        raise SurveyClosed
    if invitation is not None:
        if invitation.survey_id != survey.pk:
            raise ValueError("invitation of another survey")
        if invitation_is_expired(invitation):
            raise InvitationExpired
    if invitation is not None and started_at is None:
        started_at = invitation.started_at
    linked = invitation is not None and not survey.is_anonymous
    response = Response(
        survey=survey,
        invitation=invitation if linked else None,
        recipient_reference=invitation.recipient_reference if linked and invitation else "",
        language=language[:8],
        started_at=started_at,
        submitted_at=now,
        start_nonce=start_nonce if invitation is None else None,
    )
    values = [(question, value) for question, value in answers.items() if value is not None]
    account = survey.portal.account
    endpoints = subscribed_endpoints(account=account, event_type="response.completed")
    try:
        if _in_one_statement(survey=survey, invitation=invitation, endpoints=endpoints):
            _store_in_one_statement(response, values, answers)
            return response
        with transaction.atomic():
            if invitation is None and (survey.max_responses or survey.max_responses_per_hour):
                _check_ceilings(survey, now)
            if invitation is not None:
                claimed = Invitation.objects.filter(
                    pk=invitation.pk, completed_at__isnull=True
                ).update(completed_at=now)
                if not claimed:
                    raise AlreadyAnswered
                invitation.completed_at = now
            # Plain INSERTs: compiling them through the ORM cost a respondent more CPU than
            # the database spent storing them (issue 11).
            prepared.insert([response])
            _insert_answers(response, values)
            publish_event(
                account=account,
                event_type="response.completed",
                payload=lambda: response_payload(response, answers=_answers(response, values)),
                endpoints=endpoints,
            )
            # Last: the summary's counter rows stay locked only until the commit.
            count_response(response=response, answers=answers.items())
    except IntegrityError:
        # The one-to-one invitation column is the last line of defence of a single-use
        # invitation: only its breach means "already answered", and only a start nonce already
        # stored means the same form was sent twice. Any other integrity failure
        # (and every one through the shared link, which has no such column) is a fault to
        # be seen, never a respondent's repeat.
        if invitation is not None and Response.objects.filter(invitation=invitation).exists():
            raise AlreadyAnswered from None
        if start_nonce and Response.objects.filter(start_nonce=start_nonce).exists():
            raise FormSentTwice from None
        raise
    return response


def _answers(response: Response, values: list[tuple[Question, Any]]) -> list[Answer]:
    return [Answer(response=response, question=question, value=value) for question, value in values]


def _answers_statement(
    response: Response, values: list[tuple[Question, Any]]
) -> tuple[str, list[Any]]:
    return prepared.insert_statement(
        Answer,
        ["response_id", "question_id", "value"],
        [(response.pk, question.pk, value) for question, value in values],
        connection,
    )


def _insert_answers(response: Response, values: list[tuple[Question, Any]]) -> None:
    if values:
        with connection.cursor() as cursor:
            cursor.execute(*_answers_statement(response, values))


def _in_one_statement(
    *, survey: Survey, invitation: Invitation | None, endpoints: list[Any]
) -> bool:
    """Whether the response, its answers and its counters can be stored by one statement, in
    autocommit: on PostgreSQL, through the shared link (no invitation to claim), with no
    ceiling to check first and no webhook to enqueue with it."""
    return (
        connection.vendor == "postgresql"
        and invitation is None
        and not (survey.max_responses or survey.max_responses_per_hour)
        and not endpoints
    )


def _store_in_one_statement(
    response: Response, values: list[tuple[Question, Any]], answers: Mapping[Question, Any]
) -> None:
    """The Response, its Answers and the summary counters in one INSERT with two more in its
    WITH clause: one round trip, atomic as every statement is (no BEGIN or COMMIT to send).
    Inside a transaction already (a test's), within a savepoint so that a refused statement
    leaves the transaction usable for the checks that follow it."""
    response_sql, response_params = prepared.insert_statement(
        Response,
        [field.attname for field in Response._meta.concrete_fields],
        [[getattr(response, field.attname) for field in Response._meta.concrete_fields]],
        connection,
    )
    parts = [response_sql]
    params = list(response_params)
    if values:
        answers_sql, answers_params = _answers_statement(response, values)
        parts.append(answers_sql)
        params += answers_params
    counters_sql, counters_params = response_counting_insert(
        response=response, answers=answers.items()
    )
    clauses = ", ".join(f"stored_{n} AS ({sql})" for n, sql in enumerate(parts))
    with (
        transaction.atomic() if connection.in_atomic_block else nullcontext(),
        connection.cursor() as cursor,
    ):
        cursor.execute(f"WITH {clauses} {counters_sql}", [*params, *counters_params])
    response._state.adding = False
    response._state.db = connection.alias
    counted(response=response)


def record_held_submission(*, survey: Survey, reason: HeldReason) -> None:
    """Count one submission held for `reason` today, for the survey's results page.

    One row per survey, day and reason: an UPDATE of its count, or the row's creation
    (a concurrent creator makes the other one update instead).
    """
    day = timezone.localdate()
    rows = HeldSubmissionCount.objects.filter(survey=survey, day=day, reason=reason)
    if rows.update(count=F("count") + 1):
        return
    try:
        with transaction.atomic():
            HeldSubmissionCount.objects.create(survey=survey, day=day, reason=reason, count=1)
    except IntegrityError:
        rows.update(count=F("count") + 1)


def held_today(survey: Survey) -> dict[str, int]:
    """Today's held submissions of `survey` by reason (HeldReason values), 0 for none."""
    counts = dict.fromkeys(HeldReason.values, 0)
    for reason, count in HeldSubmissionCount.objects.filter(
        survey=survey, day=timezone.localdate()
    ).values_list("reason", "count"):
        counts[reason] = count
    return counts
