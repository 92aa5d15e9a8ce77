"""The CRM's client of the Survey REST API (/survey/api/v1/ at SURVEY_URL).

One typed function per endpoint the integration uses. Every failure is a
SurveyError whose `code` is either the Survey API's own error code (the one list of
kizuna/lib/api_errors.ErrorCode) or a ClientErrorCode of the way there (unreachable,
timeout, a 5xx, an answer that is not the contract). `message` is for people, in the active
language. Only the co-deployed Survey service at SURVEY_URL is called, so its
origin may be a loopback or private address; nothing here takes a URL a user typed.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeAlias, TypeVar

from django.conf import settings
from django.utils.dateparse import parse_datetime
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from kizuna.lib import http
from kizuna.lib.api_errors import ErrorCode

API_PATH = "/survey/api/v1"
CONNECT_TIMEOUT_SECONDS = 5.0
MAX_INVITATIONS_PER_CALL = 1000  # the Survey API's batch limit
WEBHOOK_EVENTS = ("response.completed", "response.deleted", "invitation.opened")
T = TypeVar("T")


class ClientErrorCode(enum.StrEnum):
    """Why a call failed on the way, before the Survey API could answer in its error language
    (whose codes are kizuna.lib.api_errors.ErrorCode, the one list both APIs share)."""

    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    SERVER_ERROR = "server_error"  # a 5xx without an error body
    BAD_ANSWER = "bad_answer"  # an answer that is not the contract


# Every code a SurveyError can carry.
FailureCode: TypeAlias = ErrorCode | ClientErrorCode


MESSAGES: dict[FailureCode, Promise] = {
    ErrorCode.INVALID_JSON: _("The Survey service could not read what the CRM sent."),
    ErrorCode.BAD_REQUEST: _("The Survey service could not read what the CRM sent."),
    ErrorCode.INVALID_TOKEN: _("The Survey service refused the CRM's credentials."),
    ErrorCode.MISSING_CREDENTIALS: _("Enter the SC key and the email address it belongs to."),
    ErrorCode.UNKNOWN_EMAIL: _(
        "No Survey account has a member with this email address. Use the address shown next "
        "to the SC key in Survey > Settings > SC key."
    ),
    ErrorCode.WRONG_KEY: _(
        "This SC key is not the key of this email address. Copy it again from Survey > "
        "Settings > SC key."
    ),
    ErrorCode.REVOKED_KEY: _(
        "This SC key was regenerated in Survey and no longer works. Copy the new key from "
        "Survey > Settings > SC key and connect again."
    ),
    ErrorCode.INVALID_TRUST_TOKEN: _(
        "The Survey service does not trust this CRM: KIZUNA_TRUST_TOKEN must be the same on "
        "both services."
    ),
    ErrorCode.INSUFFICIENT_ROLE: _(
        "The owner of this SC key is no longer an administrator of the Survey account. Use "
        "the key of an administrator."
    ),
    ErrorCode.PERMISSION_DENIED: _("The Survey service refused this."),
    ErrorCode.NOT_FOUND: _(
        "The Survey account has no such survey or object any more (it may have been deleted)."
    ),
    ErrorCode.SURVEY_CLOSED: _(
        "This survey is closed and accepts no responses. Open it again in Survey first."
    ),
    ErrorCode.TOO_LARGE: _("Too much was sent to the Survey service at once."),
    ErrorCode.INVALID: _("The Survey service did not accept the values sent."),
    ErrorCode.BATCH_TOO_LARGE: _("Too many invitations were sent in one call."),
    ErrorCode.THROTTLED: _(
        "Too many attempts: the Survey service refuses more for a while. Try again later."
    ),
    ClientErrorCode.UNREACHABLE: _(
        "The Survey service cannot be reached. Check that it is running (SURVEY_URL) and try again."
    ),
    ClientErrorCode.TIMEOUT: _("The Survey service did not answer in time. Try again in a moment."),
    ClientErrorCode.SERVER_ERROR: _(
        "The Survey service had an internal error. Try again in a moment."
    ),
    ClientErrorCode.BAD_ANSWER: _("The Survey service gave an answer the CRM cannot read."),
}
# The codes saying that stored credentials no longer work: the connection needs a new key.
CREDENTIAL_CODES = frozenset(
    {
        ErrorCode.UNKNOWN_EMAIL,
        ErrorCode.WRONG_KEY,
        ErrorCode.REVOKED_KEY,
        ErrorCode.INSUFFICIENT_ROLE,
    }
)


class SurveyError(Exception):
    """A call to the Survey service that failed; `code` says why, `message` for people."""

    def __init__(
        self,
        code: FailureCode,
        *,
        status: int | None = None,
        detail: str = "",
        fields: Mapping[str, list[str]] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(f"{code}: {detail}" if detail else str(code))
        self.code = code
        self.status = status
        self.detail = detail  # the Survey service's own words, for logs and administrators
        self.fields = dict(fields or {})
        self.retry_after = retry_after

    @property
    def message(self) -> str:
        return str(MESSAGES[self.code])

    @property
    def is_credential_error(self) -> bool:
        return self.code in CREDENTIAL_CODES


@dataclass(frozen=True)
class Credentials:
    """An SC key and the email address it belongs to."""

    email: str
    key: str

    def __repr__(self) -> str:  # never print the key
        return f"Credentials(email={self.email!r})"


# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    email: str  # the email address the SC key belongs to


@dataclass(frozen=True)
class Portal:
    id: int
    name: str


@dataclass(frozen=True)
class SurveyInfo:
    id: int
    portal: int
    title: str
    is_open: bool
    public_link: str


class MemberRole(enum.StrEnum):
    """A member's role in a Survey account (POST /members `role`)."""

    ADMINISTRATOR = "admin"
    MEMBER = "member"


@dataclass(frozen=True)
class Member:
    email: str
    name: str
    role: str  # a MemberRole
    is_active: bool  # False: a pending invitation to join the account
    expires_at: datetime.datetime | None


@dataclass(frozen=True)
class MemberInvitationResult:
    email: str
    status: Literal["invited", "already_invited", "existing"]
    expires_at: datetime.datetime | None
    mail_sent: bool


@dataclass(frozen=True)
class InvitationRequest:
    recipient_reference: str
    email: str = ""
    name: str = ""
    expires_at: datetime.datetime | None = None


@dataclass(frozen=True)
class Invitation:
    survey: int
    recipient_reference: str
    email: str
    name: str
    token: str
    link: str
    state: str  # sent, opened, started, completed, expired
    created: bool | None  # in a batch answer: whether that call created it
    created_at: datetime.datetime
    expires_at: datetime.datetime | None
    opened_at: datetime.datetime | None
    completed_at: datetime.datetime | None
    response_id: str | None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class DeletionPage:
    """One page of GET /responses/deleted: each item has `response_id`, `survey` {id, title},
    `recipient_reference`, `submitted_at` and `deleted_at`; every deletion since
    `complete_since` is listed (the Survey service keeps them for a bounded time)."""

    items: list[dict[str, Any]]
    next_cursor: str | None
    complete_since: datetime.datetime


@dataclass(frozen=True)
class WebhookEndpoint:
    id: int
    url: str
    events: list[str]
    is_enabled: bool
    secret: str
    created: bool  # False: the URL was registered already; the same endpoint is reused


@dataclass(frozen=True)
class AccountWithKey:
    id: int
    name: str
    portals: list[Portal]
    sc_key: str


@dataclass(frozen=True)
class AccountsForEmail:
    email: str
    created: bool  # True: the email had no Survey account; one was created with a portal
    accounts: list[AccountWithKey]


# --- the calls ------------------------------------------------------------------------------


def get_account(credentials: Credentials) -> Account:
    """The account of the SC key; the way to check a key and email (S4, K2)."""
    body = _call("GET", "/account", credentials=credentials)
    return _read(lambda: Account(id=int(body["id"]), name=body["name"], email=body["email"]))


def list_portals(credentials: Credentials) -> list[Portal]:
    body = _call("GET", "/portals", credentials=credentials)
    return _read(lambda: [_portal(item) for item in body])


def list_surveys(credentials: Credentials, *, portal: int | None = None) -> list[SurveyInfo]:
    """The surveys of one portal, or of every portal of the account."""
    params = {"portal": str(portal)} if portal is not None else None
    body = _call("GET", "/surveys", credentials=credentials, params=params)
    return _read(
        lambda: [
            SurveyInfo(
                id=int(item["id"]),
                portal=int(item["portal"]),
                title=item["title"],
                is_open=item["state"] == "open",
                public_link=item["public_link"],
            )
            for item in body
        ]
    )


def list_members(credentials: Credentials) -> list[Member]:
    """The account's members, then its pending invitations to join."""
    body = _call("GET", "/members", credentials=credentials)
    return _read(
        lambda: [
            Member(
                email=item["email"],
                name=item["name"],
                role=item["role"],
                is_active=item["state"] == "active",
                expires_at=_moment(item.get("expires_at")),
            )
            for item in body
        ]
    )


def invite_members(
    credentials: Credentials, *, emails: Sequence[str], role: MemberRole = MemberRole.MEMBER
) -> list[MemberInvitationResult]:
    """Invite people to join the account with `role` (S6, S8); each is emailed and joins
    with that role on accepting."""
    body = _call(
        "POST",
        "/members",
        credentials=credentials,
        json_body={"emails": list(emails), "role": str(role)},
    )
    return _read(
        lambda: [
            MemberInvitationResult(
                email=item["email"],
                status=item["status"],
                expires_at=_moment(item.get("expires_at")),
                mail_sent=bool(item["mail_sent"]),
            )
            for item in body["results"]
        ]
    )


def create_invitations(
    credentials: Credentials, *, survey_id: int, invitations: Sequence[InvitationRequest]
) -> list[Invitation]:
    """Personal links for up to MAX_INVITATIONS_PER_CALL recipients, in the order given.

    Idempotent: a (survey, recipient reference) invited before is answered with its
    existing invitation (`created` False), so a retried batch creates nothing twice.
    """
    if len(invitations) > MAX_INVITATIONS_PER_CALL:
        raise SurveyError(
            ErrorCode.BATCH_TOO_LARGE,
            detail=f"{len(invitations)} invitations; at most {MAX_INVITATIONS_PER_CALL} per call",
        )
    body = _call(
        "POST",
        f"/surveys/{int(survey_id)}/invitations",
        credentials=credentials,
        json_body={
            "invitations": [
                {
                    "recipient_reference": item.recipient_reference,
                    "email": item.email,
                    "name": item.name,
                    "expires_at": item.expires_at.isoformat() if item.expires_at else None,
                }
                for item in invitations
            ]
        },
    )
    return _read(lambda: [_invitation(item) for item in body["invitations"]])


def list_invitations(
    credentials: Credentials,
    *,
    survey: int | None = None,
    recipient_reference: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> Page[Invitation]:
    """One page of invitations, oldest first; follow `next_cursor` until it is None."""
    params = {"limit": str(limit)}
    if survey is not None:
        params["survey"] = str(survey)
    if recipient_reference is not None:
        params["recipient_reference"] = recipient_reference
    if cursor:
        params["cursor"] = cursor
    body = _call("GET", "/invitations", credentials=credentials, params=params)
    return _read(
        lambda: Page(
            items=[_invitation(item) for item in body["items"]], next_cursor=body["next_cursor"]
        )
    )


def list_responses(
    credentials: Credentials,
    *,
    since: datetime.datetime | None = None,
    survey: int | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> Page[dict[str, Any]]:
    """One page of responses in submission order (submitted at or after `since`).

    Each item is the `data` of a response.completed event
    (kizuna/contracts/schemas/response.completed.json), as the intake reads it.
    """
    params = {"limit": str(limit)}
    if since is not None:
        params["since"] = since.isoformat()
    if survey is not None:
        params["survey"] = str(survey)
    if cursor:
        params["cursor"] = cursor
    body = _call("GET", "/responses", credentials=credentials, params=params)
    return _read(
        lambda: Page(items=[dict(item) for item in body["items"]], next_cursor=body["next_cursor"])
    )


def list_deleted_responses(
    credentials: Credentials,
    *,
    since: datetime.datetime | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> DeletionPage:
    """One page of the responses deleted at or after `since`, in deletion order: what
    response.deleted said, for when that webhook was lost."""
    params = {"limit": str(limit)}
    if since is not None:
        params["since"] = since.isoformat()
    if cursor:
        params["cursor"] = cursor
    body = _call("GET", "/responses/deleted", credentials=credentials, params=params)

    def page() -> DeletionPage:
        complete_since = _moment(body["complete_since"])
        if complete_since is None:
            raise ValueError("complete_since is missing")
        return DeletionPage(
            items=[dict(item) for item in body["items"]],
            next_cursor=body["next_cursor"],
            complete_since=complete_since,
        )

    return _read(page)


def create_webhook_endpoint(
    credentials: Credentials,
    *,
    url: str,
    events: Sequence[str] = WEBHOOK_EVENTS,
    description: str = "",
) -> WebhookEndpoint:
    """Subscribe `url` to `events`; the same URL again reuses (and re-enables) its endpoint."""
    body = _call(
        "POST",
        "/webhooks",
        credentials=credentials,
        json_body={"url": url, "events": list(events), "description": description},
        with_status=True,
    )
    status, data = body
    return _read(
        lambda: WebhookEndpoint(
            id=int(data["id"]),
            url=data["url"],
            events=list(data["events"]),
            is_enabled=bool(data["is_enabled"]),
            secret=data["secret"],
            created=status == 201,
        )
    )


def list_webhook_endpoints(credentials: Credentials) -> list[WebhookEndpoint]:
    """The account's endpoints (without secrets: `secret` is empty)."""
    body = _call("GET", "/webhooks", credentials=credentials)
    return _read(
        lambda: [
            WebhookEndpoint(
                id=int(item["id"]),
                url=item["url"],
                events=list(item["events"]),
                is_enabled=bool(item["is_enabled"]),
                secret="",
                created=False,
            )
            for item in body
        ]
    )


def delete_webhook_endpoint(credentials: Credentials, *, endpoint_id: int) -> None:
    """Delete an endpoint; SurveyError `not_found` when it is already gone."""
    _call("DELETE", f"/webhooks/{int(endpoint_id)}", credentials=credentials)


def accounts_for_email(
    *, email: str, name: str = "", account_name: str = "", language: str = ""
) -> AccountsForEmail:
    """The Survey accounts `email` administers, each with its SC key; a new account (with a
    first portal) when there is none (S7). Authenticated by the deployment's trust token."""
    body = _call(
        "POST",
        "/internal/accounts-for-email",
        headers={"X-Kizuna-Trust": settings.KIZUNA_TRUST_TOKEN},
        json_body={
            "email": email,
            "name": name,
            "account_name": account_name,
            "language": language,
        },
    )
    return _read(
        lambda: AccountsForEmail(
            email=body["email"],
            created=bool(body["created"]),
            accounts=[
                AccountWithKey(
                    id=int(item["id"]),
                    name=item["name"],
                    portals=[_portal(portal) for portal in item["portals"]],
                    sc_key=item["sc_key"],
                )
                for item in body["accounts"]
            ],
        )
    )


# --- the way there --------------------------------------------------------------------------


def _call(
    method: Literal["GET", "POST", "DELETE"],
    path: str,
    *,
    credentials: Credentials | None = None,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    json_body: Any = None,
    with_status: bool = False,
) -> Any:
    """The JSON answer of one call (with its status when `with_status`), or a SurveyError."""
    sent = dict(headers or {})
    if credentials is not None:
        sent |= {"X-SC-Email": credentials.email, "X-SC-Key": credentials.key}
    timeout = settings.KIZUNA_SURVEY_TIMEOUT_SECONDS
    try:
        result = http.request(
            method,
            settings.SURVEY_URL + API_PATH + path,
            json_body=json_body,
            params=params,
            headers=sent,
            allowed_origins=[settings.SURVEY_URL],
            timeout_seconds=timeout,
            connect_timeout_seconds=min(CONNECT_TIMEOUT_SECONDS, timeout),
        )
    except http.RequestTimedOut as error:
        raise SurveyError(ClientErrorCode.TIMEOUT, detail=str(error)) from error
    except http.BodyTooLarge as error:
        raise SurveyError(ErrorCode.TOO_LARGE, detail=str(error)) from error
    except http.OutboundError as error:
        raise SurveyError(ClientErrorCode.UNREACHABLE, detail=str(error)) from error
    if result.status_code == 204:
        return (204, None) if with_status else None
    if 200 <= result.status_code < 300:
        try:
            data = result.json()
        except ValueError as error:
            raise SurveyError(
                ClientErrorCode.BAD_ANSWER, status=result.status_code, detail="not JSON"
            ) from error
        return (result.status_code, data) if with_status else data
    raise _error(result)


def _error(result: http.Result) -> SurveyError:
    status = result.status_code
    try:
        error = result.json()["error"]
        code, detail, fields = error["code"], str(error.get("message", "")), error.get("fields")
    except (ValueError, KeyError, TypeError):
        code, detail, fields = "", result.content[:200].decode("utf-8", "replace"), None
    retry_after = result.headers.get("retry-after", "")
    known: FailureCode
    if code in ErrorCode.__members__.values():
        known = ErrorCode(code)
    else:
        known = ClientErrorCode.SERVER_ERROR if status >= 500 else ClientErrorCode.BAD_ANSWER
    return SurveyError(
        known,
        status=status,
        detail=detail,
        fields=fields if isinstance(fields, dict) else None,
        retry_after=int(retry_after) if retry_after.isdigit() else None,
    )


def _read(build: Callable[[], T]) -> T:
    """`build()` reading an answer; an answer not shaped like the contract is `bad_answer`."""
    try:
        value: T = build()
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise SurveyError(ClientErrorCode.BAD_ANSWER, detail=repr(error)) from error
    return value


def _moment(value: Any) -> datetime.datetime | None:
    if value is None:
        return None
    parsed = parse_datetime(str(value))
    if parsed is None:
        raise ValueError(f"not a date and time: {value!r}")
    return parsed


def _portal(item: Mapping[str, Any]) -> Portal:
    return Portal(id=int(item["id"]), name=item["name"])


def _invitation(item: Mapping[str, Any]) -> Invitation:
    created_at = _moment(item["created_at"])
    if created_at is None:
        raise ValueError("an invitation without created_at")
    return Invitation(
        survey=int(item["survey"]),
        recipient_reference=item["recipient_reference"],
        email=item["email"],
        name=item["name"],
        token=item["token"],
        link=item["link"],
        state=item["state"],
        created=item.get("created"),
        created_at=created_at,
        expires_at=_moment(item.get("expires_at")),
        opened_at=_moment(item.get("opened_at")),
        completed_at=_moment(item.get("completed_at")),
        response_id=item.get("response_id"),
    )
