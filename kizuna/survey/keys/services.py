"""Creating, regenerating and checking SC keys (K1, K2)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from kizuna.identity.models import User
from kizuna.lib import crypto
from kizuna.survey.audit import services as audit
from kizuna.survey.audit.models import AuditAction
from kizuna.survey.keys.models import ServiceKey
from kizuna.survey.models import AccountMember

KEY_PREFIX = "sck_"
FINGERPRINT_PURPOSE = "survey-sc-key"
# last_used_at is informative: write it at most this often per key.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def new_key_value() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _create_key(*, member: AccountMember, by: User | None) -> ServiceKey:
    value = new_key_value()
    return ServiceKey.objects.create(
        member=member,
        encrypted_key=crypto.encrypt_secret(value),
        fingerprint=crypto.fingerprint(value, purpose=FINGERPRINT_PURPOSE),
        created_by=by,
    )


def get_or_create_key(*, member: AccountMember, by: User | None = None) -> ServiceKey:
    """The member's active SC key, created on first use. Only administrators have keys."""
    if not member.is_administrator:
        raise PermissionDenied("Only account administrators have SC keys.")
    existing = ServiceKey.objects.filter(member=member, revoked_at__isnull=True).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return _create_key(member=member, by=by)
    except IntegrityError:
        # Two first views at once: the other request created it.
        return ServiceKey.objects.get(member=member, revoked_at__isnull=True)


def regenerate_key(*, member: AccountMember, by: User) -> ServiceKey:
    """Revoke the member's key at once and issue a new one (K2), in one transaction."""
    if not member.is_administrator:
        raise PermissionDenied("Only account administrators have SC keys.")
    with transaction.atomic():
        # Lock the member row so two regenerations in a row cannot both create a key.
        AccountMember.objects.select_for_update().filter(pk=member.pk).first()
        ServiceKey.objects.filter(member=member, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        audit.record(
            account=member.account,
            actor=by,
            action=AuditAction.SC_KEY_REGENERATED,
            target=member,
        )
        return _create_key(member=member, by=by)


class KeyAuthenticationError(Exception):
    """An API call whose SC credentials are refused; `code` is the API error code."""

    def __init__(self, code: str, message: str | Promise, *, status: int = 401) -> None:
        super().__init__(str(message))
        self.code = code
        self.message = message
        self.status = status


def _max_failures() -> int:
    return settings.KIZUNA_SC_KEY_MAX_FAILURES


def window_seconds() -> int:
    """How long failed attempts are counted, and a throttled client waits (Retry-After)."""
    return settings.KIZUNA_SC_KEY_WINDOW_SECONDS


def _throttle_keys(address: str, email: str) -> list[tuple[str, int]]:
    """Cache keys counting failures, with their limits: per address and email, per address.

    The per-address limit (five times larger) stops one client from guessing keys
    across many emails.
    """
    pair = hashlib.sha256(f"{address}|{email.strip().lower()}".encode()).hexdigest()
    single = hashlib.sha256(address.encode()).hexdigest()
    return [
        (f"survey_keys:failures:{pair}", _max_failures()),
        (f"survey_keys:failures:address:{single}", _max_failures() * 5),
    ]


def _record_failure(address: str, email: str) -> None:
    for key, _limit in _throttle_keys(address, email):
        # add() starts the window; later failures count within it without extending it.
        if not cache.add(key, 1, timeout=window_seconds()):
            try:
                cache.incr(key)
            except ValueError:  # expired between add() and incr()
                cache.add(key, 1, timeout=window_seconds())


def is_throttled(*, address: str, email: str) -> bool:
    return any(int(cache.get(key, 0)) >= limit for key, limit in _throttle_keys(address, email))


def authenticate_key(*, email: str, key: str, address: str) -> ServiceKey:
    """The active key of an administrator matching `email` and `key`, or KeyAuthenticationError.

    Failures are counted per address and email in the shared cache; past the
    limit every attempt is refused (429) until the window ends.
    """
    email = email.strip()
    key = key.strip()
    if not email or not key:
        raise KeyAuthenticationError(
            "missing_credentials",
            _("Send the headers X-SC-Email and X-SC-Key."),
        )
    if is_throttled(address=address, email=email):
        raise KeyAuthenticationError(
            "throttled",
            _("Too many failed attempts with this email. Try again later."),
            status=429,
        )
    try:
        service_key = _check(email=email, key=key)
    except KeyAuthenticationError as error:
        if error.status == 401:
            _record_failure(address, email)
        raise
    now = timezone.now()
    if service_key.last_used_at is None or service_key.last_used_at < now - LAST_USED_RESOLUTION:
        ServiceKey.objects.filter(pk=service_key.pk).update(last_used_at=now)
        service_key.last_used_at = now
    return service_key


def _check(*, email: str, key: str) -> ServiceKey:
    if not AccountMember.objects.filter(user__email__iexact=email, user__is_active=True).exists():
        raise KeyAuthenticationError(
            "unknown_email", _("No Survey account member has this email address.")
        )
    wrong_key = KeyAuthenticationError(
        "wrong_key", _("This SC key is not the key of this email address.")
    )
    if not key.startswith(KEY_PREFIX):
        raise wrong_key
    service_key = (
        ServiceKey.objects.select_related("member__user", "member__account")
        .filter(fingerprint__in=crypto.fingerprint_candidates(key, purpose=FINGERPRINT_PURPOSE))
        .first()
    )
    if service_key is None or service_key.member.user.email.lower() != email.lower():
        raise wrong_key
    try:
        stored = service_key.reveal()
    except crypto.DecryptionError:
        raise wrong_key from None
    if not crypto.constant_time_equals(key, stored):
        raise wrong_key
    if service_key.revoked_at is not None:
        raise KeyAuthenticationError(
            "revoked_key",
            _("This SC key was regenerated and no longer works. Reconnect with the new key."),
        )
    if not service_key.member.user.is_active:
        raise wrong_key
    if not service_key.member.is_administrator:
        raise KeyAuthenticationError(
            "insufficient_role",
            _("The owner of this SC key is no longer an administrator of the Survey account."),
            status=403,
        )
    return service_key
