"""Bearer-token authentication of the CRM API."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from ninja.security import HttpBearer

from kizuna.crm.api.models import ApiToken
from kizuna.crm.api.services import note_api_token_use
from kizuna.crm.models import Membership
from kizuna.crm.services import hash_token
from kizuna.lib.api_errors import APIError, ErrorCode

INVALID_TOKEN = _(
    "Send a valid API token: Authorization: Bearer <token>. Revoked tokens and tokens of "
    "former members do not work."
)


class TokenAuth(HttpBearer):
    """`Authorization: Bearer <token>`: the caller is the token's member in its organization.

    A revoked token, a deactivated user or a membership that is no longer active
    authenticates nobody (401 `invalid_token`; no token at all is `missing_credentials`).
    """

    openapi_description = (
        "A personal API token from /crm/api-tokens/, sent as `Authorization: Bearer <token>`."
    )

    def authenticate(self, request: HttpRequest, token: str) -> Membership:
        api_token = (
            ApiToken.objects.select_related("user", "organization")
            .filter(token_hash=hash_token(token), revoked_at__isnull=True)
            .first()
        )
        if api_token is None or not api_token.user.is_active:
            raise APIError(ErrorCode.INVALID_TOKEN, INVALID_TOKEN, status=401)
        membership = (
            Membership.objects.select_related("organization", "user")
            .filter(organization=api_token.organization, user=api_token.user, is_active=True)
            .first()
        )
        if membership is None:
            raise APIError(ErrorCode.INVALID_TOKEN, INVALID_TOKEN, status=401)
        note_api_token_use(api_token=api_token)
        return membership
