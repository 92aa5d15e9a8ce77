"""One error language for Kizuna's REST APIs: the CRM API and the Survey API answer alike.

Every error is `{"error": {"code": ..., "message": ..., "fields": {...}}}` with its HTTP
status: `code` is an `ErrorCode` (stable, for programs), `message` is for people, in the
caller's language, and `fields` maps request fields, by dotted path (`invitations.3.email`),
to messages; it is empty when the error is not about values sent (`invalid`, 422, names
them all). Errors that concern no single field are under `non_field_errors`.

An API raises `APIError` (or Django's Http404, PermissionDenied, ValidationError) and
`install()` turns each into that body, with the same handlers for every API.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.template.defaultfilters import filesizeformat
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from ninja import Field, Schema
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError

if TYPE_CHECKING:
    from ninja import NinjaAPI

NON_FIELD_ERRORS = "non_field_errors"


class ErrorCode(enum.StrEnum):
    """Every error code of Kizuna's APIs, one per meaning (MEANINGS says which)."""

    INVALID_JSON = "invalid_json"
    BAD_REQUEST = "bad_request"
    MISSING_CREDENTIALS = "missing_credentials"
    INVALID_TOKEN = "invalid_token"  # noqa: S105 - an error code, not a secret
    UNKNOWN_EMAIL = "unknown_email"
    WRONG_KEY = "wrong_key"
    REVOKED_KEY = "revoked_key"
    INVALID_TRUST_TOKEN = "invalid_trust_token"  # noqa: S105 - an error code, not a secret
    INSUFFICIENT_ROLE = "insufficient_role"
    PERMISSION_DENIED = "permission_denied"
    NOT_FOUND = "not_found"
    SURVEY_CLOSED = "survey_closed"
    TOO_LARGE = "too_large"
    INVALID = "invalid"
    BATCH_TOO_LARGE = "batch_too_large"
    THROTTLED = "throttled"


# What each code means, with the status it comes with: published in both OpenAPI documents.
MEANINGS: dict[ErrorCode, str] = {
    ErrorCode.INVALID_JSON: "400: the body is not a JSON object in UTF-8",
    ErrorCode.BAD_REQUEST: "400: another request the API cannot read",
    ErrorCode.MISSING_CREDENTIALS: "401: no credentials were sent",
    ErrorCode.INVALID_TOKEN: "401: the CRM API token is unknown or revoked, or its user is no "
    "longer an active member",
    ErrorCode.UNKNOWN_EMAIL: "401: no member of a Survey account has the X-SC-Email address",
    ErrorCode.WRONG_KEY: "401: the SC key is not the key of that email address",
    ErrorCode.REVOKED_KEY: "401: the SC key was regenerated; connect again with the new key",
    ErrorCode.INVALID_TRUST_TOKEN: "401: a deployment-internal route without the trust token",
    ErrorCode.INSUFFICIENT_ROLE: "403: the SC key's owner is no longer an account administrator",
    ErrorCode.PERMISSION_DENIED: "403: the caller may not do this to this object",
    ErrorCode.NOT_FOUND: "404: no such object for this caller (ids of other tenants too)",
    ErrorCode.SURVEY_CLOSED: "409: the survey accepts no responses, so no invitations",
    ErrorCode.TOO_LARGE: "413: the request body is larger than the server accepts",
    ErrorCode.INVALID: "422: values sent are not valid; `fields` says which and why",
    ErrorCode.BATCH_TOO_LARGE: "422: more items in one call than allowed; split the batch",
    ErrorCode.THROTTLED: "429: too many failed attempts, or too many invitation emails; wait "
    "Retry-After seconds",
}


class ErrorBody(Schema):
    code: ErrorCode = Field(
        description="What went wrong, for programs. "
        + "; ".join(f"`{code}` ({meaning})" for code, meaning in MEANINGS.items())
        + "."
    )
    message: str = Field(description="What went wrong, for people, in the caller's language.")
    fields: dict[str, list[str]] = Field(
        description="Messages per request field (dotted path, e.g. `invitations.3.email`; "
        "`non_field_errors` for the request as a whole); empty when the error is not about "
        "values sent."
    )


class ErrorOut(Schema):
    error: ErrorBody


class APIError(Exception):
    """An error answered as ErrorOut with `status` (and `headers`, e.g. Retry-After)."""

    def __init__(
        self,
        code: ErrorCode,
        message: str | Promise,
        *,
        status: int,
        fields: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(str(message))
        self.code = code
        self.message = message
        self.status = status
        self.fields = fields or {}
        self.headers = headers or {}


def invalid(fields: dict[str, list[str]]) -> APIError:
    """422 `invalid`: the values sent in `fields` are not valid, each with its messages."""
    return APIError(ErrorCode.INVALID, _("Some values are not valid."), status=422, fields=fields)


def field_errors(error: DjangoValidationError) -> dict[str, list[str]]:
    """A Django ValidationError as `fields` (one without field names is a non-field error)."""
    if hasattr(error, "error_dict"):
        return {
            NON_FIELD_ERRORS if name == "__all__" else name: [str(m) for m in messages]
            for name, messages in error.message_dict.items()
        }
    return {NON_FIELD_ERRORS: [str(message) for message in error.messages]}


def field_name(location: list[Any] | tuple[Any, ...]) -> str:
    """The request field of a django-ninja error location: a parameter's name, a body's path.

    ("body", "payload", "invitations", 3, "email") -> "invitations.3.email";
    ("query", "status", 0) -> "status" (the second ?status= is the same parameter).
    """
    parts = [str(part) for part in location]
    if parts[:1] in (["query"], ["path"], ["header"]):
        return parts[1] if len(parts) > 1 else NON_FIELD_ERRORS
    if parts[:1] == ["body"]:
        parts = parts[1:]
    if parts[:1] == ["payload"]:
        parts = parts[1:]
    return ".".join(parts) or NON_FIELD_ERRORS


# Pydantic's messages are English only: the usual ones, in the caller's language.
VALIDATION_MESSAGES: dict[str, Promise] = {
    "missing": _("This field is required."),
    "extra_forbidden": _("There is no such field."),
    "string_type": _("Send a text string."),
    "string_too_long": _("Use at most %(max_length)s characters."),
    "string_too_short": _("Use at least %(min_length)s characters."),
    "too_long": _("Give at most %(max_length)s items."),
    "too_short": _("Give at least %(min_length)s items."),
    "int_parsing": _("Send a whole number."),
    "int_type": _("Send a whole number."),
    "int_from_float": _("Send a whole number."),
    "bool_parsing": _("Send true or false."),
    "bool_type": _("Send true or false."),
    "list_type": _("Send a list."),
    "dict_type": _("Send an object."),
    "model_type": _("Send an object."),
    "model_attributes_type": _("Send an object."),
    "datetime_parsing": _("Send a date and time, e.g. 2026-12-31T23:59:00+09:00."),
    "datetime_from_date_parsing": _("Send a date and time, e.g. 2026-12-31T23:59:00+09:00."),
    "datetime_type": _("Send a date and time, e.g. 2026-12-31T23:59:00+09:00."),
    "enum": _("Use one of: %(expected)s."),
    "literal_error": _("Use one of: %(expected)s."),
    "greater_than_equal": _("Use a number of at least %(ge)s."),
    "less_than_equal": _("Use a number of at most %(le)s."),
}


def validation_message(item: dict[str, Any]) -> str:
    """The caller-language message of one pydantic error (pydantic's own for unusual kinds)."""
    message = VALIDATION_MESSAGES.get(str(item.get("type", "")))
    if message is None:
        return str(item.get("msg", ""))
    context = item.get("ctx") or {}
    names = ("max_length", "min_length", "expected", "ge", "le")
    return str(message) % {name: context.get(name, "") for name in names}


def install(
    api: NinjaAPI,
    *,
    missing_credentials: str | Promise,
    not_found: str | Promise,
    authenticate_header: str = "",
) -> None:
    """Answer every error of `api` in the one error language.

    `missing_credentials` says which credentials the API expects, `not_found` what
    a 404 means there; `authenticate_header` is sent as WWW-Authenticate with 401s.
    """

    def answer(request: HttpRequest, error: APIError) -> HttpResponse:
        body = {"code": str(error.code), "message": str(error.message), "fields": error.fields}
        response = api.create_response(request, {"error": body}, status=error.status)
        for name, value in error.headers.items():
            response[name] = value
        if error.status == 401 and authenticate_header:
            response.setdefault("WWW-Authenticate", authenticate_header)
        return response

    api.exception_handler(APIError)(answer)

    @api.exception_handler(AuthenticationError)
    def authentication_error(request: HttpRequest, error: AuthenticationError) -> HttpResponse:
        return answer(
            request, APIError(ErrorCode.MISSING_CREDENTIALS, missing_credentials, status=401)
        )

    @api.exception_handler(NinjaValidationError)
    def schema_error(request: HttpRequest, error: NinjaValidationError) -> HttpResponse:
        fields: dict[str, list[str]] = {}
        for item in error.errors:
            name = field_name(list(item.get("loc", [])))
            fields.setdefault(name, []).append(validation_message(item))
        return answer(request, invalid(fields))

    @api.exception_handler(DjangoValidationError)
    def validation_error(request: HttpRequest, error: DjangoValidationError) -> HttpResponse:
        return answer(request, invalid(field_errors(error)))

    @api.exception_handler(HttpError)
    def http_error(request: HttpRequest, error: HttpError) -> HttpResponse:
        if isinstance(error.__cause__, ValueError):
            # django-ninja could not read the body: not JSON, or not UTF-8 (both ValueErrors).
            message = _("The request body is not valid JSON: send a JSON object encoded in UTF-8.")
            return answer(request, APIError(ErrorCode.INVALID_JSON, message, status=400))
        return answer(
            request, APIError(ErrorCode.BAD_REQUEST, str(error.message), status=error.status_code)
        )

    @api.exception_handler(RequestDataTooBig)
    def too_large(request: HttpRequest, error: RequestDataTooBig) -> HttpResponse:
        size = filesizeformat(settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0)
        message = _("The request body is larger than %(size)s: send less at once.") % {"size": size}
        return answer(request, APIError(ErrorCode.TOO_LARGE, message, status=413))

    @api.exception_handler(PermissionDenied)
    def permission_denied(request: HttpRequest, error: PermissionDenied) -> HttpResponse:
        message = str(error) or _("You may not do this.")
        return answer(request, APIError(ErrorCode.PERMISSION_DENIED, message, status=403))

    @api.exception_handler(Http404)
    def not_found_error(request: HttpRequest, error: Http404) -> HttpResponse:
        return answer(request, APIError(ErrorCode.NOT_FOUND, not_found, status=404))
