"""Writes of the public survey pages: the invitation lifecycle and submitting a response.

Every write that other systems must hear about publishes its webhook event in
the same transaction as the rows it describes (DESIGN.md §3, transactional
outbox): a response is never stored without its delivery being enqueued.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction
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
from kizuna.survey.results.services import count_response
from kizuna.survey.webhooks.services import (
    invitation_payload,
    publish_event,
    response_payload,
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
    try:
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
                if started_at is None:
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
            stored = [
                Answer(response=response, question=question, value=value)
                for question, value in answers.items()
                if value is not None
            ]
            # Plain INSERTs: compiling them through the ORM cost a respondent more CPU than
            # the database spent storing them (issue 11).
            prepared.insert([response])
            prepared.insert(stored)
            publish_event(
                account=survey.portal.account,
                event_type="response.completed",
                payload=lambda: response_payload(response, answers=stored),
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
