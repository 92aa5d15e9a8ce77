"""Authentication of the Survey API: an SC key with its email, or the deployment's trust token."""

from __future__ import annotations

from django.http import HttpRequest
from ninja.security import APIKeyHeader

from kizuna.lib.api_errors import APIError, ErrorCode
from kizuna.survey.api.services import TrustTokenRefused, check_trust_token
from kizuna.survey.keys.models import ServiceKey
from kizuna.survey.keys.services import KeyAuthenticationError, authenticate_key, window_seconds


class SCKeyAuth(APIKeyHeader):
    """X-SC-Email + X-SC-Key: an SC key of an administrator of the account (K1)."""

    param_name = "X-SC-Key"

    def authenticate(self, request: HttpRequest, key: str | None) -> ServiceKey:
        try:
            return authenticate_key(
                email=request.headers.get("X-SC-Email", ""),
                key=key or "",
                address=request.META.get("REMOTE_ADDR", ""),
            )
        except KeyAuthenticationError as error:
            # A throttled caller is told how long to wait: the window of counted failures.
            headers = {"Retry-After": str(window_seconds())} if error.status == 429 else {}
            raise APIError(
                ErrorCode(error.code), error.message, status=error.status, headers=headers
            ) from None


class TrustTokenAuth(APIKeyHeader):
    """X-Kizuna-Trust: the deployment's trust token, shared with the co-deployed CRM only."""

    param_name = "X-Kizuna-Trust"

    def authenticate(self, request: HttpRequest, key: str | None) -> bool:
        try:
            check_trust_token(token=key or "", address=request.META.get("REMOTE_ADDR", ""))
        except TrustTokenRefused as error:
            headers = {"Retry-After": str(error.retry_after)} if error.retry_after else {}
            raise APIError(
                ErrorCode(error.code), error.message, status=error.status, headers=headers
            ) from None
        return True
