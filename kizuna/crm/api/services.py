"""Every write of the API app: personal tokens and the records changed through the API."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import TYPE_CHECKING

from django.db.models import Q
from django.utils import timezone

from kizuna.crm.api.models import ApiToken
from kizuna.crm.models import Organization
from kizuna.crm.services import hash_token

if TYPE_CHECKING:
    from kizuna.identity.models import User

TOKEN_PREFIX = "kzc_"  # noqa: S105 - a label, not a secret
PREFIX_SHOWN = 10
# Writing last_used_at on every call would make every read a write.
LAST_USED_PRECISION = timedelta(minutes=1)


def create_api_token(*, user: User, organization: Organization, name: str) -> tuple[ApiToken, str]:
    """A new token for `user` in `organization`; the plain token is returned only here."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    api_token = ApiToken.objects.create(
        user=user,
        organization=organization,
        name=name,
        prefix=token[:PREFIX_SHOWN],
        token_hash=hash_token(token),
    )
    return api_token, token


def revoke_api_token(*, api_token: ApiToken) -> None:
    """Stop the token at once; revoking twice keeps the first time."""
    ApiToken.objects.filter(pk=api_token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    api_token.refresh_from_db(fields=["revoked_at"])


def note_api_token_use(*, api_token: ApiToken) -> None:
    now = timezone.now()
    ApiToken.objects.filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_PRECISION),
        pk=api_token.pk,
    ).update(last_used_at=now)
