"""Publishing Survey events to webhook endpoints and delivering them (DESIGN.md §3).

publish_event() writes one Delivery row per subscribed endpoint inside the
caller's transaction (transactional outbox); the worker sends each row with
deliver(), signed in the Standard Webhooks format, until the endpoint accepts
it or the retry horizon (more than 3 days) is over.
"""

from __future__ import annotations

import copy
import datetime
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connections, router, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from standardwebhooks import Webhook

from kizuna.identity.models import User
from kizuna.lib import crypto, prepared
from kizuna.lib import http as outbound
from kizuna.lib.group_commit import GroupCommit
from kizuna.lib.prepared import PreparedQuery
from kizuna.survey.audit import services as audit
from kizuna.survey.audit.models import AuditAction
from kizuna.survey.models import Answer, Invitation, Response, Survey, SurveyAccount
from kizuna.survey.validation import answer_display, answer_labels
from kizuna.survey.webhooks.models import (
    DeletedResponse,
    Delivery,
    DeliveryAttempt,
    WebhookEndpoint,
    WebhookEvent,
    new_signing_secret,
)
from kizuna.work import leases, wakeup
from kizuna.work.leases import WorkStatus

logger = logging.getLogger(__name__)

EVENT_TYPES = tuple(WebhookEvent.values)
# Standard Webhooks: 410 Gone means "stop sending to this endpoint". It is the only
# answer that stops delivery early: a receiver mid-deploy answers 404 or 401 for a
# while, and giving up then would lose a response (DESIGN §3: at least once, 3 days).
GONE = 410


def iso_time(value: datetime.datetime) -> str:
    """A time as every payload and list of the API writes it: UTC, ISO 8601, with Z."""
    return value.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


def _iso(value: datetime.datetime | None) -> str | None:
    return iso_time(value) if value else None


# --- payloads -------------------------------------------------------------------------------


def _survey_payload(survey: Survey) -> dict[str, Any]:
    return {
        "id": survey.pk,
        "public_id": survey.public_id,
        "title": survey.title,
        "portal": {"id": survey.portal_id, "name": survey.portal.name},
    }


def response_payload(
    response: Response, *, answers: Iterable[Answer] | None = None
) -> dict[str, Any]:
    """The `data` of response.completed and response.deleted (contracts/schemas/).

    Every answer carries its question (id, kind, text), its stored value, its text for
    people and its labels as data (`choices`, or a matrix's `rows` with their columns), so
    the receiver needs no other call to show it and never parses the text. `answers`, with
    their questions, when the caller has them in hand (the submission just stored).
    """
    survey = response.survey
    if answers is not None:
        answers = sorted(answers, key=lambda a: (a.question.position, a.question_id))
    elif "answers" in getattr(response, "_prefetched_objects_cache", {}):
        # Listing many responses (the API) prefetches answers with their questions.
        answers = sorted(response.answers.all(), key=lambda a: (a.question.position, a.question_id))
    else:
        answers = list(
            response.answers.select_related("question").order_by(
                "question__position", "question_id"
            )
        )
    return {
        "response_id": str(response.pk),
        "account_id": survey.portal.account_id,
        "survey": _survey_payload(survey),
        "recipient_reference": response.recipient_reference,
        "language": response.language,
        "started_at": _iso(response.started_at),
        "submitted_at": _iso(response.submitted_at),
        "answers": [
            {
                "question": {
                    "id": answer.question_id,
                    "kind": answer.question.kind,
                    "text": answer.question.text,
                    "position": answer.question.position,
                },
                "value": answer.value,
                "display": answer_display(answer.question, answer.value),
                **answer_labels(answer.question, answer.value),
            }
            for answer in answers
        ],
    }


def invitation_payload(invitation: Invitation) -> dict[str, Any]:
    """The `data` of invitation.opened: which invitation (by recipient reference) and when."""
    survey = invitation.survey
    return {
        "account_id": survey.portal.account_id,
        "survey": _survey_payload(survey),
        "recipient_reference": "" if survey.is_anonymous else invitation.recipient_reference,
        "opened_at": _iso(invitation.opened_at),
    }


# --- deletions ------------------------------------------------------------------------------


def keep_deletion(*, response: Response) -> DeletedResponse:
    """Remember that `response` is deleted (in the caller's transaction), for GET
    /responses/deleted: which response, of which survey and recipient, submitted when."""
    survey = response.survey
    deletion, _created = DeletedResponse.objects.update_or_create(
        response_id=response.pk,
        defaults={
            "account_id": survey.portal.account_id,
            "survey_id": survey.pk,
            "survey_title": survey.title,
            "recipient_reference": response.recipient_reference,
            "submitted_at": response.submitted_at,
            "deleted_at": timezone.now(),
        },
    )
    return deletion


def prune_deleted_responses() -> int:
    """Forget deletions older than DeletedResponse.RETENTION; how many were forgotten."""
    horizon = timezone.now() - DeletedResponse.RETENTION
    deleted, _by_model = DeletedResponse.objects.filter(deleted_at__lt=horizon).delete()
    return deleted


# --- publishing -----------------------------------------------------------------------------


# Read in the transaction of every submission: compiled once per thread (lib/prepared.py).
_ENABLED_ENDPOINTS_OF_ACCOUNT: PreparedQuery[WebhookEndpoint] = PreparedQuery(
    lambda account_id: WebhookEndpoint.objects.filter(account_id=account_id, is_enabled=True),
    placeholder=-8_642_097_531,
)


def subscribed_endpoints(*, account: SurveyAccount, event_type: str) -> list[WebhookEndpoint]:
    """The enabled endpoints of `account` subscribed to `event_type`."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"Unknown webhook event {event_type!r}")
    return [
        endpoint
        for endpoint in _ENABLED_ENDPOINTS_OF_ACCOUNT.all(account.pk)
        if endpoint.is_subscribed_to(event_type)
    ]


def publish_event(
    *,
    account: SurveyAccount,
    event_type: str,
    payload: dict[str, Any] | Callable[[], dict[str, Any]],
    endpoints: list[WebhookEndpoint] | None = None,
) -> list[Delivery]:
    """One Delivery per enabled endpoint of `account` subscribed to `event_type`.

    Runs in the caller's transaction: the event is enqueued if and only if the
    rows it describes are committed. `payload` may be a function that makes it, called
    only when some endpoint is subscribed. `endpoints`: subscribed_endpoints() of the same
    account and event, when the caller read them already.
    """
    if endpoints is None:
        endpoints = subscribed_endpoints(account=account, event_type=event_type)
    if not endpoints:
        return []
    now = timezone.now()
    data = payload() if callable(payload) else payload
    envelope = {"type": event_type, "timestamp": _iso(now), "data": data}
    with transaction.atomic(savepoint=False):
        deliveries = Delivery.objects.bulk_create(
            Delivery(
                endpoint=endpoint,
                event_type=event_type,
                payload=envelope,
                created_at=now,
                next_attempt_at=now,
            )
            for endpoint in endpoints
        )
        wakeup.notify(Delivery)  # the workers wake when this commits
    return deliveries


# --- endpoints ------------------------------------------------------------------------------


def url_refusal(url: str) -> str | None:
    """Why `url` cannot be a webhook endpoint (translated), or None if it can."""
    try:
        outbound.check_url(url, allowed_origins=settings.KIZUNA_WEBHOOK_ALLOWED_ORIGINS)
    except outbound.UnsafeURLError as error:
        return str(_URL_REFUSALS.get(error.code, _URL_REFUSALS["invalid_url"]))
    return None


_URL_REFUSALS = {
    "invalid_url": _("Enter a valid http or https URL."),
    "unsupported_scheme": _("Only http and https URLs are allowed."),
    "unresolvable": _("The host of this URL cannot be found."),
    "private_address": _(
        "This URL points to a private or local network address, which this deployment "
        "does not allow."
    ),
}


def clean_events(events: Iterable[str]) -> list[str]:
    chosen = [event for event in EVENT_TYPES if event in set(events)]
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        raise ValidationError(
            _("Unknown events: %(events)s."), params={"events": ", ".join(unknown)}
        )
    if not chosen:
        raise ValidationError(_("Choose at least one event."))
    return chosen


def _validated(url: str, events: Iterable[str], description: str = "") -> list[str]:
    """The chosen events in canonical order; ValidationError naming the fields at fault."""
    errors: dict[str, list[str]] = {}
    url_limit = WebhookEndpoint._meta.get_field("url").max_length or 0
    description_limit = WebhookEndpoint._meta.get_field("description").max_length or 0
    refusal = _too_long(url_limit, len(url)) if len(url) > url_limit else url_refusal(url)
    if refusal:
        errors["url"] = [refusal]
    if len(description) > description_limit:
        errors["description"] = [_too_long(description_limit, len(description))]
    chosen: list[str] = []
    try:
        chosen = clean_events(events)
    except ValidationError as error:
        errors["events"] = list(error.messages)
    if errors:
        raise ValidationError(errors)
    return chosen


def _too_long(limit: int, length: int) -> str:
    return str(
        _("Use at most %(limit)d characters (this has %(length)d).")
        % {"limit": limit, "length": length}
    )


@transaction.atomic
def create_endpoint(
    *,
    account: SurveyAccount,
    url: str,
    events: Iterable[str],
    by: User | None,
    description: str = "",
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (whsec_...), after checking the URL (SSRF)."""
    url, description = url.strip(), description.strip()
    chosen = _validated(url, events, description)
    secret = new_signing_secret()
    endpoint = WebhookEndpoint.objects.create(
        account=account,
        url=url,
        events=chosen,
        encrypted_secret=crypto.encrypt_secret(secret),
        description=description,
        created_by=by,
    )
    audit.record(
        account=account,
        actor=by,
        action=AuditAction.WEBHOOK_ENDPOINT_CREATED,
        target=endpoint,
        data={"events": chosen},
    )
    return endpoint, secret


def register_endpoint(
    *,
    account: SurveyAccount,
    url: str,
    events: Iterable[str],
    by: User | None,
    description: str = "",
) -> tuple[WebhookEndpoint, str, bool]:
    """create_endpoint(), or update the account's endpoint of that URL; (endpoint, secret, created).

    A service registering its URL again (e.g. a CRM re-enabling its integration)
    gets the same endpoint and secret, with the events it asks for now, and the
    endpoint enabled again if it had answered 410. Pending deliveries it stopped
    stay stopped: they can be replayed from Settings > Webhooks.
    """
    url = url.strip()
    existing = WebhookEndpoint.objects.filter(account=account, url=url).order_by("pk").first()
    if existing is None:
        endpoint, secret = create_endpoint(
            account=account, url=url, events=events, by=by, description=description
        )
        return endpoint, secret, True
    existing.events = _validated(url, events, description.strip())
    existing.description = description.strip() or existing.description
    existing.is_enabled, existing.disabled_reason, existing.disabled_at = True, "", None
    with transaction.atomic():
        existing.save(
            update_fields=["events", "description", "is_enabled", "disabled_reason", "disabled_at"]
        )
        audit.record(
            account=account,
            actor=by,
            action=AuditAction.WEBHOOK_ENDPOINT_REGISTERED,
            target=existing,
            data={"events": existing.events},
        )
    return existing, existing.signing_secret(), False


@transaction.atomic
def delete_endpoint(*, endpoint: WebhookEndpoint, by: User) -> None:
    """Remove the endpoint with its deliveries: nothing more is sent to it."""
    audit.record(
        account=endpoint.account,
        actor=by,
        action=AuditAction.WEBHOOK_ENDPOINT_DELETED,
        target=endpoint,
    )
    endpoint.delete()


def disable_endpoint(*, endpoint: WebhookEndpoint, reason: str) -> None:
    """Stop sending to the endpoint: it gets no new events, and pending deliveries stop.

    Only deliveries do this (the endpoint answered 410 Gone): Kizuna itself is the actor.
    """
    now = timezone.now()
    with transaction.atomic():
        audit.record(
            account=endpoint.account,
            actor=None,
            action=AuditAction.WEBHOOK_ENDPOINT_DISABLED,
            target=endpoint,
            data={"reason": reason[:300]},
        )
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
            is_enabled=False, disabled_reason=reason[:300], disabled_at=now
        )
        Delivery.objects.filter(endpoint=endpoint, status=WorkStatus.PENDING).update(
            status=WorkStatus.FAILED,
            finished_at=now,
            last_error=reason[:4000],
        )
    endpoint.is_enabled, endpoint.disabled_reason, endpoint.disabled_at = False, reason, now


@transaction.atomic
def enable_endpoint(*, endpoint: WebhookEndpoint, by: User) -> None:
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        is_enabled=True, disabled_reason="", disabled_at=None
    )
    endpoint.is_enabled, endpoint.disabled_reason, endpoint.disabled_at = True, "", None
    audit.record(
        account=endpoint.account,
        actor=by,
        action=AuditAction.WEBHOOK_ENDPOINT_ENABLED,
        target=endpoint,
    )


@transaction.atomic
def replay_delivery(*, delivery: Delivery, by: User) -> bool:
    """Send the delivery again now, with the same webhook-id; False while it is in flight."""
    updated = (
        Delivery.objects.filter(pk=delivery.pk)
        .exclude(status=WorkStatus.LEASED)
        .update(
            status=WorkStatus.PENDING,
            next_attempt_at=timezone.now(),
            finished_at=None,
            # A replay is a fresh chance: a full retry schedule again.
            max_attempts=delivery.attempts + Delivery._meta.get_field("max_attempts").default,
        )
    )
    if updated:
        wakeup.notify(Delivery)
        audit.record(
            account=delivery.endpoint.account,
            actor=by,
            action=AuditAction.WEBHOOK_DELIVERY_REPLAYED,
            target=delivery,
            data={"url": delivery.endpoint.url, "event": delivery.event_type},
        )
    return bool(updated)


def _send_again(deliveries: Any) -> int:
    """Make these deliveries due now, each with a fresh retry schedule; leased ones are left."""
    count: int = deliveries.exclude(status=WorkStatus.LEASED).update(
        status=WorkStatus.PENDING,
        next_attempt_at=timezone.now(),
        finished_at=None,
        max_attempts=F("attempts") + Delivery._meta.get_field("max_attempts").default,
    )
    if count:
        wakeup.notify(Delivery)
    return count


@transaction.atomic
def retry_failed_deliveries(*, endpoint: WebhookEndpoint, by: User) -> int:
    """Send every dead-lettered delivery of the endpoint again now (same webhook-ids)."""
    count = _send_again(Delivery.objects.filter(endpoint=endpoint, status=WorkStatus.FAILED))
    audit.record(
        account=endpoint.account,
        actor=by,
        action=AuditAction.WEBHOOK_FAILED_RETRIED,
        target=endpoint,
        data={"count": count},
    )
    return count


@transaction.atomic
def resend_deliveries_since(
    *, endpoint: WebhookEndpoint, since: datetime.datetime, by: User
) -> int:
    """Send every delivery created since `since` again now, delivered or not (same webhook-ids).

    For a receiver that lost what it had accepted (a restored backup): it drops the
    copies it still has by their webhook-id. Deliveries being sent are left alone.
    """
    count = _send_again(Delivery.objects.filter(endpoint=endpoint, created_at__gte=since))
    audit.record(
        account=endpoint.account,
        actor=by,
        action=AuditAction.WEBHOOK_DELIVERIES_RESENT,
        target=endpoint,
        data={
            "count": count,
            "since": since.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        },
    )
    return count


# --- recovery -------------------------------------------------------------------------------

# A failing endpoint is tried at most this often while its deliveries wait out their
# back-off, so that it is found working again within a minute of its recovery.
PROBE_SECONDS = 60.0


def _record_failure(endpoint: WebhookEndpoint, delivery: Delivery, reason: str) -> None:
    now = timezone.now()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        failing_since=Coalesce(F("failing_since"), now), last_failed_at=now
    )
    logger.warning(
        "Webhook delivery %s to endpoint %s (%s) failed on attempt %d: %s; %s",
        delivery.pk,
        endpoint.pk,
        endpoint.origin,
        delivery.attempts,
        reason,
        "given up" if delivery.status == WorkStatus.FAILED else "will retry",
    )


def _record_success(endpoint: WebhookEndpoint) -> None:
    """The endpoint works (again): after an outage, what waits for its back-off is due now.

    Only after an outage (no success for PROBE_SECONDS): an endpoint that refuses some
    deliveries while it accepts others must not have those retried at every success.
    """
    if endpoint.failing_since is None:
        return
    now = timezone.now()
    was_down = endpoint.failing_since <= now - datetime.timedelta(seconds=PROBE_SECONDS)
    with transaction.atomic():
        if not WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=False).update(
            failing_since=None
        ):
            return  # another thread saw the recovery first
        if not was_down:
            endpoint.failing_since = None
            return
        # The lane's cap per endpoint paces them: the endpoint is not flooded.
        waiting = Delivery.objects.filter(
            endpoint_id=endpoint.pk, status=WorkStatus.PENDING, next_attempt_at__gt=now
        ).update(next_attempt_at=now)
        if waiting:
            wakeup.notify(Delivery)
    endpoint.failing_since = None
    logger.info(
        "Webhook endpoint %s (%s) answers again: %d waiting deliveries are due now",
        endpoint.pk,
        endpoint.origin,
        waiting,
    )


def probe_failing_endpoints() -> int:
    """Make one waiting delivery due on each failing endpoint not tried for PROBE_SECONDS.

    Run by the worker every few seconds. Its success (_record_success) makes the
    endpoint's whole backlog due, so a receiver that was down for hours gets it
    within about a minute of coming back, not after the back-off of each delivery.
    """
    now = timezone.now()
    quiet = now - datetime.timedelta(seconds=PROBE_SECONDS)
    failing = WebhookEndpoint.objects.filter(
        is_enabled=True, failing_since__isnull=False, last_failed_at__lte=quiet
    ).values_list("pk", flat=True)
    probed = 0
    for endpoint_id in failing:
        deliveries = Delivery.objects.filter(endpoint_id=endpoint_id)
        if deliveries.filter(
            Q(status=WorkStatus.LEASED)
            | Q(
                status=WorkStatus.PENDING,
                next_attempt_at__lte=now + datetime.timedelta(seconds=PROBE_SECONDS),
            )
        ).exists():
            continue  # an attempt is under way or soon
        first = (
            deliveries.filter(status=WorkStatus.PENDING).order_by("next_attempt_at", "pk").first()
        )
        if first is None:
            continue
        if Delivery.objects.filter(pk=first.pk, status=WorkStatus.PENDING).update(
            next_attempt_at=now
        ):
            probed += 1
    if probed:
        wakeup.notify(Delivery)
    return probed


# --- delivering -----------------------------------------------------------------------------


def signed_headers(
    *, secret: str, message_id: str, timestamp: datetime.datetime, body: str
) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt (`timestamp` is made UTC here)."""
    utc = timestamp.astimezone(datetime.UTC)
    signature = Webhook(secret).sign(message_id, utc, body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(utc.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


def _timeouts() -> tuple[float, float]:
    total = settings.KIZUNA_WEBHOOK_TIMEOUT_SECONDS
    return total, min(settings.KIZUNA_WEBHOOK_CONNECT_TIMEOUT_SECONDS, total)


# Read for every delivery sent: compiled once per thread (lib/prepared.py), as the lookups of
# a submission are. A delivery costs a worker about 5 ms of CPU, a compiled lookup 0.8 of it.
_ENDPOINT: PreparedQuery[WebhookEndpoint] = PreparedQuery(
    lambda endpoint_id: WebhookEndpoint.objects.filter(pk=endpoint_id),
    placeholder=-7_531_902_468,
)


# The endpoint a lane read for a claimed delivery (read_endpoints), kept on the delivery's
# object until deliver() takes it.
_CLAIMED_ENDPOINT = "_claimed_endpoint"


def read_endpoints(deliveries: Sequence[Delivery]) -> None:
    """Read the endpoints of a claim's deliveries, once each, for deliver() (the lane's
    prepare(), run once the claim has committed and before any of them is sent).

    deliver() then checks the endpoint a few milliseconds before its POST instead of just
    before it: the same guarantee. Nothing stops an endpoint from being disabled (or its
    URL changed) right after deliver() read it in either case, so a disable racing a
    delivery already claimed may see that one delivery sent, as before; every delivery
    claimed after the disable reads the endpoint disabled and is refused, and a delivery
    of a deleted endpoint is gone with it (deliver() looks it up again only without one).
    Each delivery gets its own copy, as its own lookup gave it.
    """
    # One compiled lookup an endpoint (a claim's rows mostly share one): an ORM query of
    # them all cost the lane's dispatcher more CPU than a lookup each.
    endpoints = {
        endpoint_id: _ENDPOINT.get(endpoint_id)
        for endpoint_id in dict.fromkeys(delivery.endpoint_id for delivery in deliveries)
    }
    for delivery in deliveries:
        endpoint = endpoints.get(delivery.endpoint_id)
        if endpoint is not None:
            delivery.__dict__[_CLAIMED_ENDPOINT] = copy.copy(endpoint)


def _record_attempt(delivery: Delivery, **fields: Any) -> None:
    prepared.insert([DeliveryAttempt(delivery=delivery, **fields)])


# The lane's threads commit their accepted deliveries together: the attempts of a group in
# one INSERT and their "done" marks in one fenced UPDATE, in one transaction shared by the
# threads that finished meanwhile (lib/group_commit.py), instead of two commits a delivery.
# Each thread still goes on only once its own delivery is committed. On PostgreSQL a group's
# bookkeeping is one statement (_record_all_accepted), atomic by itself: no BEGIN and COMMIT.
_bookkeeping = GroupCommit(
    atomic=lambda: connections[router.db_for_write(DeliveryAttempt)].vendor != "postgresql"
)


def _record_all_accepted(accepted: Sequence[tuple[Delivery, DeliveryAttempt]]) -> list[bool]:
    """Store the attempts and mark the deliveries done, each only if still ours; whether each
    was marked. An attempt is stored even when its delivery was taken over: it was made.
    On PostgreSQL one statement (the INSERT of the attempts in the fenced UPDATE's WITH
    clause), elsewhere an INSERT and an UPDATE."""
    attempts = [attempt for _delivery, attempt in accepted]
    connection = connections[router.db_for_write(DeliveryAttempt)]
    fields = [field for field in DeliveryAttempt._meta.concrete_fields if not field.primary_key]
    insert = prepared.insert_statement(
        DeliveryAttempt,
        [field.attname for field in fields],
        [[field.pre_save(attempt, add=True) for field in fields] for attempt in attempts],
        connection,
    )
    return leases.mark_each_done([delivery for delivery, _attempt in accepted], along_with=insert)


def deliver(delivery: Delivery) -> None:
    """Send one claimed delivery and record the attempt (the worker's handler).

    2xx: done. 410: the endpoint is disabled and nothing more is sent to it.
    Any other answer (3xx, 4xx, 5xx), timeouts, connection errors and refused URLs:
    retried with back-off until max_attempts (more than 3 days), then failed
    (dead-lettered, replayable from Settings > Webhooks).
    """
    endpoint = delivery.__dict__.pop(_CLAIMED_ENDPOINT, None) or _ENDPOINT.get(delivery.endpoint_id)
    if endpoint is None:
        raise WebhookEndpoint.DoesNotExist(f"Endpoint {delivery.endpoint_id} was deleted")
    if not endpoint.is_enabled:
        leases.mark_failed(
            delivery,
            error=str(
                _("The endpoint is disabled: %(reason)s") % {"reason": endpoint.disabled_reason}
            ),
            retry=False,
        )
        return
    body = json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":"))
    headers = signed_headers(
        secret=endpoint.signing_secret(),
        message_id=delivery.message_id,
        timestamp=timezone.now(),
        body=body,
    )
    total, connect = _timeouts()
    started = timezone.now()
    try:
        result = outbound.post(
            endpoint.url,
            content=body.encode(),
            headers=headers,
            allowed_origins=settings.KIZUNA_WEBHOOK_ALLOWED_ORIGINS,
            timeout_seconds=total,
            connect_timeout_seconds=connect,
        )
    except outbound.OutboundError as error:
        duration_ms = round((timezone.now() - started).total_seconds() * 1000)
        _record_attempt(delivery, attempted_at=started, duration_ms=duration_ms, error=str(error))
        leases.mark_failed(delivery, error=str(error), retry=True)
        _record_failure(endpoint, delivery, str(error))
        return
    attempt = DeliveryAttempt(
        delivery=delivery,
        attempted_at=started,
        status_code=result.status_code,
        duration_ms=result.duration_ms,
        response_body=result.body[:1000],
    )
    status = result.status_code
    if 200 <= status < 300:
        _bookkeeping.run_batched(_record_all_accepted, (delivery, attempt))
        _record_success(endpoint)
        return
    prepared.insert([attempt])
    if status == GONE:
        reason = str(_("The endpoint answered 410 Gone: it asked to receive no more events."))
        leases.mark_failed(delivery, error=reason, retry=False)
        _record_failure(endpoint, delivery, f"HTTP {status}")
        disable_endpoint(endpoint=endpoint, reason=reason)
    else:
        leases.mark_failed(delivery, error=f"HTTP {status}", retry=True)
        _record_failure(endpoint, delivery, f"HTTP {status}")
