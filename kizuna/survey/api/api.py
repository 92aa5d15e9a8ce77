"""Survey REST API v1, mounted at /survey/api/v1/ (OpenAPI at /survey/api/v1/openapi.json).

Every call is authenticated by the headers X-SC-Email and X-SC-Key (an SC key of
an account administrator) and acts on that key's account; ids of other accounts
are 404. Errors speak Kizuna's one error language (kizuna.lib.api_errors):
{"error": {"code", "message", "fields"}}. The one
deployment-internal route (/internal/accounts-for-email) takes the trust token
(X-Kizuna-Trust) instead, and never an SC key.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from ninja import NinjaAPI, Query, Status

from kizuna.lib import api_errors, cursors
from kizuna.lib.api_errors import APIError, ErrorCode, ErrorOut
from kizuna.survey import services as survey_services
from kizuna.survey.api import schemas
from kizuna.survey.api import services as api_services
from kizuna.survey.api.auth import SCKeyAuth, TrustTokenAuth
from kizuna.survey.keys.models import ServiceKey
from kizuna.survey.models import (
    AccountMember,
    Answer,
    Invitation,
    MemberInvitation,
    Portal,
    Question,
    Response,
    Survey,
)
from kizuna.survey.webhooks import services as webhook_services
from kizuna.survey.webhooks.models import DeletedResponse, WebhookEndpoint

M = TypeVar("M", bound=Model)
NO_STORE = "no-store"  # answers holding secrets
DEFAULT_PAGE_SIZE = 100
# Documented on every route: {"error": {"code", "message", "fields"}}.
ERRORS: dict[int, Any] = {code: ErrorOut for code in (400, 401, 403, 404, 413, 422, 429)}
MAX_PAGE_SIZE = 500


api = NinjaAPI(
    title="Kizuna Survey API",
    version="1",
    description=(
        "Authenticate every call with the headers X-SC-Email (the email address of the "
        "key's owner) and X-SC-Key (Survey > Settings > SC key). Errors: "
        '{"error": {"code": ..., "message": ..., "fields": {...}}}: `code` is one of the '
        "codes listed in the ErrorBody schema, `fields` names the values that are not valid."
    ),
    urls_namespace="survey:survey_api_v1",
    auth=SCKeyAuth(),
)


api_errors.install(
    api,
    missing_credentials=_("Send the headers X-SC-Email and X-SC-Key."),
    not_found=_("Nothing with this id in this account."),
)


def _member(request: HttpRequest) -> AccountMember:
    service_key: ServiceKey = request.auth  # type: ignore[attr-defined]
    return service_key.member


# --- cursors --------------------------------------------------------------------------------


def _invalid_cursor() -> APIError:
    return api_errors.invalid({"cursor": [str(_("Use the next_cursor of a previous answer."))]})


def _integer_key(text: str) -> int:
    if not text.isdigit() or len(text) > 18:  # beyond a bigint would be a database error
        raise _invalid_cursor()
    return int(text)


def _uuid_key(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise _invalid_cursor() from None


def _page_after(
    rows: QuerySet[Any],
    *,
    moment: str,
    cursor: str | None,
    limit: int,
    key: Callable[[str], Any],
) -> tuple[list[Any], str | None]:
    """One page of `rows` in (`moment`, pk) order after `cursor`, and the next page's cursor."""
    size = limit
    if cursor:
        decoded = cursors.decode_cursor(cursor)
        if decoded is None:
            raise _invalid_cursor()
        at, pk = decoded[0], key(decoded[1])
        rows = rows.filter(Q(**{f"{moment}__gt": at}) | Q(**{moment: at, "pk__gt": pk}))
    page = list(rows.order_by(moment, "pk")[: size + 1])
    if len(page) <= size:
        return page, None
    last = page[size - 1]
    return page[:size], cursors.encode_cursor(getattr(last, moment), last.pk)


def _answers_of(responses: list[Response]) -> dict[uuid.UUID, list[Answer]]:
    """The answers of `responses` with their questions, by response: one query, and each
    question read once. prefetch_related took more than half of a page of 500 (a queryset
    cloned per response to fill its cache: the reconciliation pull of a backlog, issue 7)."""
    answers: dict[uuid.UUID, list[Answer]] = {response.pk: [] for response in responses}
    rows = list(Answer.objects.filter(response__in=list(answers)))
    questions = Question.objects.in_bulk({answer.question_id for answer in rows})
    for answer in rows:
        answer.question = questions[answer.question_id]
        answers[answer.response_id].append(answer)
    return answers


def _of_survey(rows: QuerySet[M], *, account_id: int, survey: int | None) -> QuerySet[M]:
    """`rows` of one survey when a survey id is given (404 for a survey of another account)."""
    if survey is None:
        return rows
    get_object_or_404(Survey.objects.of(account_id), pk=survey)
    return rows.filter(survey_id=survey)


# --- account, portals, surveys, members -----------------------------------------------------


@api.get("/account", response={200: schemas.AccountOut, **ERRORS}, tags=["account"])
def get_account(request: HttpRequest) -> dict[str, Any]:
    """The account of the SC key, and the email address the key belongs to."""
    member = _member(request)
    return {"id": member.account_id, "name": member.account.name, "email": member.user.email}


@api.get("/portals", response={200: list[schemas.PortalOut], **ERRORS}, tags=["account"])
def list_portals(request: HttpRequest) -> list[Portal]:
    return list(Portal.objects.of(_member(request).account_id).order_by("name", "id"))


def _survey_out(survey: Survey) -> dict[str, Any]:
    return {
        "id": survey.pk,
        "portal": survey.portal_id,
        "title": survey.title,
        "state": "open" if survey.accepts_responses() else "closed",
        "public_link": settings.KIZUNA_BASE_URL
        + reverse("survey_public:survey", args=[survey.public_id]),
    }


@api.get("/surveys", response={200: list[schemas.SurveyOut], **ERRORS}, tags=["surveys"])
def list_surveys(request: HttpRequest, portal: int | None = None) -> list[dict[str, Any]]:
    """The surveys of one portal (`portal`), or of every portal of the account."""
    account_id = _member(request).account_id
    surveys = Survey.objects.of(account_id)
    if portal is not None:
        get_object_or_404(Portal.objects.of(account_id), pk=portal)
        surveys = surveys.filter(portal_id=portal)
    return [_survey_out(survey) for survey in surveys.order_by("portal_id", "title", "id")]


@api.get("/members", response={200: list[schemas.MemberOut], **ERRORS}, tags=["members"])
def list_members(request: HttpRequest) -> list[dict[str, Any]]:
    """The account's members, then its pending invitations (`state` says which)."""
    account_id = _member(request).account_id
    members = AccountMember.objects.of(account_id).select_related("user").order_by("user__email")
    invitations = MemberInvitation.objects.of(account_id).filter(expires_at__gt=timezone.now())
    rows: list[dict[str, Any]] = [
        {
            "email": m.user.email,
            "name": m.user.full_name,
            "role": m.role,
            "state": "active",
            "expires_at": None,
        }
        for m in members
    ]
    rows += [
        {
            "email": i.email,
            "name": "",
            "role": i.role,
            "state": "invited",
            "expires_at": i.expires_at,
        }
        for i in invitations.order_by("email")
    ]
    return rows


@api.post(
    "/members",
    response={200: schemas.InviteMembersOut, **ERRORS},
    tags=["members"],
    openapi_extra={
        "responses": {429: {"headers": {"Retry-After": {"schema": {"type": "integer"}}}}}
    },
)
def invite_members(request: HttpRequest, payload: schemas.InviteMembersIn) -> dict[str, Any]:
    """Invite up to 1,000 email addresses to the account; nobody becomes a member without
    accepting (in Survey, or through the link emailed to them).

    Each new invitation is emailed and works for KIZUNA_SURVEY_MEMBER_INVITATION_DAYS.
    The emails an account may send are limited (KIZUNA_SURVEY_MEMBER_INVITATION_RATE):
    a call that would pass the limit answers 429 `throttled` with Retry-After, and
    invites nobody.
    """
    member = _member(request)
    try:
        outcomes = survey_services.invite_members(
            account=member.account, emails=payload.emails, by=member.user, role=payload.role
        )
    except DjangoValidationError as error:
        raise api_errors.invalid({"emails": [str(m) for m in error.messages]}) from None
    except survey_services.InvitationsThrottled as error:
        raise APIError(
            ErrorCode.THROTTLED,
            error.message,
            status=429,
            headers={"Retry-After": str(error.wait)},
        ) from None
    return {
        "results": [
            {
                "email": outcome.email,
                "status": str(outcome.status),
                "expires_at": outcome.expires_at,
                "mail_sent": outcome.mail_sent,
            }
            for outcome in outcomes
        ]
    }


# --- invitations ----------------------------------------------------------------------------


def _invitation_out(invitation: Invitation, *, created: bool | None = None) -> dict[str, Any]:
    response = getattr(invitation, "response", None)
    return {
        "survey": invitation.survey_id,
        "recipient_reference": invitation.recipient_reference,
        "email": invitation.email,
        "name": invitation.name,
        "token": invitation.token,
        "link": api_services.invitation_link(invitation),
        "state": api_services.invitation_state(invitation),
        "created": created,
        "created_at": invitation.created_at,
        "expires_at": invitation.expires_at,
        "opened_at": invitation.opened_at,
        "started_at": invitation.started_at,
        "completed_at": invitation.completed_at,
        "response_id": str(response.pk) if response is not None else None,
    }


@api.post(
    "/surveys/{survey_id}/invitations",
    response={200: schemas.InvitationBatchOut, 409: ErrorOut, **ERRORS},
    tags=["invitations"],
)
def create_invitations(
    request: HttpRequest, survey_id: int, payload: schemas.InvitationBatchIn
) -> dict[str, Any]:
    """Create up to 1,000 invitations; an existing (survey, reference) is returned with its
    token (a retried batch creates nothing twice), and a link not completed yet is renewed:
    it takes the later expiry of the two (none: it never expires).

    A survey that accepts no responses (closed, or past its closing time) answers
    409 `survey_closed` and creates nothing. The whole batch is refused, re-posts of
    recipients invited before the survey closed included: their links would only
    answer 410.
    """
    survey = get_object_or_404(Survey.objects.of(_member(request).account_id), pk=survey_id)
    if not survey.accepts_responses():
        raise APIError(
            ErrorCode.SURVEY_CLOSED,
            _(
                "This survey is closed: it accepts no responses, so no invitations are "
                "created for it. Open it again in Survey to invite people."
            ),
            status=409,
        )
    if len(payload.invitations) > api_services.MAX_INVITATIONS_PER_BATCH:
        raise APIError(
            ErrorCode.BATCH_TOO_LARGE,
            _("Send at most %(limit)d invitations at once (this batch has %(count)d).")
            % {"limit": api_services.MAX_INVITATIONS_PER_BATCH, "count": len(payload.invitations)},
            status=422,
            fields={"invitations": [str(_("Split the batch."))]},
        )
    results = api_services.create_invitations(
        survey=survey,
        recipients=[
            api_services.Recipient(
                recipient_reference=item.recipient_reference,
                email=item.email,
                name=item.name,
                expires_at=item.expires_at,
            )
            for item in payload.invitations
        ],
    )
    return {
        "invitations": [
            _invitation_out(invitation, created=created) for invitation, created in results
        ]
    }


@api.get("/invitations", response={200: schemas.InvitationPage, **ERRORS}, tags=["invitations"])
def list_invitations(
    request: HttpRequest,
    survey: int | None = None,
    recipient_reference: str | None = None,
    cursor: str | None = None,
    limit: int = Query(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE),
) -> dict[str, Any]:
    """Invitations by survey and/or recipient reference, oldest first, with their state."""
    account_id = _member(request).account_id
    invitations = _of_survey(
        Invitation.objects.of(account_id).select_related("response"),
        account_id=account_id,
        survey=survey,
    )
    if recipient_reference is not None:
        invitations = invitations.filter(recipient_reference=recipient_reference)
    page, next_cursor = _page_after(
        invitations, moment="created_at", cursor=cursor, limit=limit, key=_integer_key
    )
    return {"items": [_invitation_out(i) for i in page], "next_cursor": next_cursor}


# --- responses ------------------------------------------------------------------------------


@api.get("/responses", response={200: schemas.ResponsePage, **ERRORS}, tags=["responses"])
def list_responses(
    request: HttpRequest,
    survey: int | None = None,
    since: datetime.datetime | None = None,
    cursor: str | None = None,
    limit: int = Query(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE),
) -> HttpResponse:
    """Responses in submission order, each as the `data` of a response.completed event.

    `since` keeps those submitted at or after that time; follow `next_cursor`
    until it is null.
    """
    account_id = _member(request).account_id
    responses = _of_survey(
        Response.objects.of(account_id).select_related("survey__portal"),
        account_id=account_id,
        survey=survey,
    )
    if since is not None:
        if timezone.is_naive(since):
            raise api_errors.invalid({"since": [str(_("Give the time with its time zone."))]})
        responses = responses.filter(submitted_at__gte=since)
    page, next_cursor = _page_after(
        responses, moment="submitted_at", cursor=cursor, limit=limit, key=_uuid_key
    )
    answers = _answers_of(page)
    body = {
        "items": [webhook_services.response_payload(r, answers=answers[r.pk]) for r in page],
        "next_cursor": next_cursor,
    }
    # The payloads are the webhooks' own, already in the shape of schemas.ResponsePage (a
    # test holds them to it): validating them again cost more than half the time of a page
    # of 500 (the reconciliation pull of a backlog, issue 7).
    return HttpResponse(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        content_type="application/json; charset=utf-8",
    )


@api.get(
    "/responses/deleted",
    response={200: schemas.DeletedResponsePage, **ERRORS},
    tags=["responses"],
)
def list_deleted_responses(
    request: HttpRequest,
    survey: int | None = None,
    since: datetime.datetime | None = None,
    cursor: str | None = None,
    limit: int = Query(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE),
) -> dict[str, Any]:
    """Responses deleted at or after `since`, in deletion order: what response.deleted told,
    for a client that missed it. Deletions are kept for 30 days (`complete_since`); the
    answers of a deleted response are not. Follow `next_cursor` until it is null.
    """
    account_id = _member(request).account_id
    complete_since = timezone.now() - DeletedResponse.RETENTION
    deletions = DeletedResponse.objects.of(account_id).filter(deleted_at__gte=complete_since)
    if survey is not None:
        # Not _of_survey(): the survey itself may be deleted since. Only the account's own
        # deletions are listed, so another account's survey id lists nothing.
        deletions = deletions.filter(survey_id=survey)
    if since is not None:
        if timezone.is_naive(since):
            raise api_errors.invalid({"since": [str(_("Give the time with its time zone."))]})
        deletions = deletions.filter(deleted_at__gte=since)
    page, next_cursor = _page_after(
        deletions, moment="deleted_at", cursor=cursor, limit=limit, key=_uuid_key
    )
    return {
        "items": [
            {
                "response_id": str(deletion.response_id),
                "survey": {"id": deletion.survey_id, "title": deletion.survey_title},
                "recipient_reference": deletion.recipient_reference,
                "submitted_at": webhook_services.iso_time(deletion.submitted_at),
                "deleted_at": webhook_services.iso_time(deletion.deleted_at),
            }
            for deletion in page
        ],
        "next_cursor": next_cursor,
        "complete_since": webhook_services.iso_time(complete_since),
    }


# --- webhook endpoints ----------------------------------------------------------------------


def _endpoint_out(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": endpoint.pk,
        "url": endpoint.url,
        "events": endpoint.events,
        "description": endpoint.description,
        "is_enabled": endpoint.is_enabled,
        "disabled_reason": endpoint.disabled_reason,
        "created_at": endpoint.created_at,
    }


@api.get("/webhooks", response={200: list[schemas.WebhookEndpointOut], **ERRORS}, tags=["webhooks"])
def list_webhook_endpoints(request: HttpRequest) -> list[dict[str, Any]]:
    endpoints = WebhookEndpoint.objects.of(_member(request).account_id)
    return [_endpoint_out(endpoint) for endpoint in endpoints]


@api.post(
    "/webhooks",
    response={
        200: schemas.WebhookEndpointCreatedOut,
        201: schemas.WebhookEndpointCreatedOut,
        **ERRORS,
    },
    tags=["webhooks"],
)
def create_webhook_endpoint(
    request: HttpRequest, response: HttpResponse, payload: schemas.WebhookEndpointIn
) -> Status[dict[str, Any]]:
    """Subscribe a URL to events; the answer holds the signing secret (also shown in Settings).

    201 for a new endpoint. The same URL again answers 200 with the existing
    endpoint and secret, now subscribed to these events and enabled again.
    """
    response["Cache-Control"] = NO_STORE
    member = _member(request)
    endpoint, secret, created = webhook_services.register_endpoint(
        account=member.account,
        url=payload.url,
        events=payload.events,
        description=payload.description,
        by=member.user,
    )
    return Status(201 if created else 200, {**_endpoint_out(endpoint), "secret": secret})


def _enabled_endpoint(member: AccountMember, endpoint_id: int) -> WebhookEndpoint:
    endpoint = get_object_or_404(WebhookEndpoint.objects.of(member.account_id), pk=endpoint_id)
    if not endpoint.is_enabled:
        raise api_errors.invalid(
            {"endpoint_id": [str(_("Enable the endpoint before replaying its deliveries."))]}
        )
    return endpoint


@api.post(
    "/webhooks/{endpoint_id}/retry-failed",
    response={200: schemas.WebhookResentOut, **ERRORS},
    tags=["webhooks"],
)
def retry_failed_webhook_deliveries(request: HttpRequest, endpoint_id: int) -> dict[str, int]:
    """Send every failed (dead-lettered) delivery of the endpoint again now, same webhook-ids."""
    member = _member(request)
    endpoint = _enabled_endpoint(member, endpoint_id)
    count = webhook_services.retry_failed_deliveries(endpoint=endpoint, by=member.user)
    return {"count": count}


@api.post(
    "/webhooks/{endpoint_id}/resend",
    response={200: schemas.WebhookResentOut, **ERRORS},
    tags=["webhooks"],
)
def resend_webhook_deliveries(
    request: HttpRequest, endpoint_id: int, payload: schemas.WebhookResendIn
) -> dict[str, int]:
    """Send every delivery created since `since` again now, delivered or not, same webhook-ids."""
    member = _member(request)
    endpoint = _enabled_endpoint(member, endpoint_id)
    since = payload.since
    if timezone.is_naive(since):
        since = timezone.make_aware(since, datetime.UTC)
    count = webhook_services.resend_deliveries_since(endpoint=endpoint, since=since, by=member.user)
    return {"count": count}


@api.delete("/webhooks/{endpoint_id}", response={204: None, **ERRORS}, tags=["webhooks"])
def delete_webhook_endpoint(request: HttpRequest, endpoint_id: int) -> Status[None]:
    member = _member(request)
    endpoint = get_object_or_404(WebhookEndpoint.objects.of(member.account_id), pk=endpoint_id)
    webhook_services.delete_endpoint(endpoint=endpoint, by=member.user)
    return Status(204, None)


# --- deployment-internal --------------------------------------------------------------------


@api.post(
    "/internal/accounts-for-email",
    auth=TrustTokenAuth(),
    response={200: schemas.AccountsForEmailOut, **ERRORS},
    tags=["internal"],
)
def accounts_for_email(
    request: HttpRequest, response: HttpResponse, payload: schemas.AccountsForEmailIn
) -> dict[str, Any]:
    """For the co-deployed CRM's "my own account" method (S7); needs X-Kizuna-Trust.

    The accounts this email administers, each with that member's SC key, or a new
    account (with a first portal) when there is none.
    """
    response["Cache-Control"] = NO_STORE
    try:
        found = api_services.find_or_create_accounts_for_email(
            email=payload.email,
            name=payload.name,
            account_name=payload.account_name,
            language=payload.language,
        )
    except DjangoValidationError as error:
        fields = (
            api_errors.field_errors(error)
            if hasattr(error, "error_dict")
            else {"email": [str(_("Enter a valid email address."))]}
        )
        raise api_errors.invalid(fields) from None
    return {
        "email": found.user.email,
        "created": found.created,
        "accounts": [
            {
                "id": item.account.pk,
                "name": item.account.name,
                "portals": list(item.account.portals.order_by("name", "id")),
                "sc_key": item.key.reveal(),
            }
            for item in found.accounts
        ],
    }
