"""Creating, regenerating and checking SC keys (K1, K2)."""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

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


def _require_administrator(member: AccountMember) -> None:
    if not member.is_administrator:
        raise PermissionDenied("Only account administrators have SC keys.")


def get_or_create_key(*, member: AccountMember, by: User | None = None) -> ServiceKey:
    """The member's active SC key, created on first use. Only administrators have keys."""
    _require_administrator(member)
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
    _require_administrator(member)
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


# The per-address limit is this many times the per-email one: it stops one client from
# trying many emails, while a CRM calling for several accounts from one address never
# comes near it with valid keys (they are not counted).
ADDRESS_LIMIT_FACTOR = 5


@dataclass(frozen=True)
class _Counter:
    """One count of failed attempts in the shared cache, and the limit past which it refuses."""

    cache_key: str
    limit: int
    is_per_address: bool


def _counters(address: str, email: str) -> list[_Counter]:
    """What a failure from `address` for `email` counts towards: the pair, and the address."""
    pair = hashlib.sha256(f"{address}|{email.strip().lower()}".encode()).hexdigest()
    single = hashlib.sha256(address.encode()).hexdigest()
    return [
        _Counter(f"survey_keys:failures:v2:{pair}", _max_failures(), is_per_address=False),
        _Counter(
            f"survey_keys:failures:v2:address:{single}",
            _max_failures() * ADDRESS_LIMIT_FACTOR,
            is_per_address=True,
        ),
    ]


def _throttled(counter: _Counter) -> KeyAuthenticationError:
    """The 429 of a counter past its limit, saying what was limited and for how long."""
    minutes = max(1, math.ceil(window_seconds() / 60))
    if counter.is_per_address:
        message = ngettext(
            "Too many failed attempts from your network address. Try again in %(minutes)d "
            "minute; a correct SC key is accepted meanwhile.",
            "Too many failed attempts from your network address. Try again in %(minutes)d "
            "minutes; a correct SC key is accepted meanwhile.",
            minutes,
        )
    else:
        message = ngettext(
            "Too many failed attempts for this email address from your network address. "
            "Try again in %(minutes)d minute; a correct SC key is accepted meanwhile.",
            "Too many failed attempts for this email address from your network address. "
            "Try again in %(minutes)d minutes; a correct SC key is accepted meanwhile.",
            minutes,
        )
    return KeyAuthenticationError("throttled", message % {"minutes": minutes}, status=429)


def _failures(counter: _Counter) -> int:
    count, _ends_at = cache.get(counter.cache_key, (0, 0.0))
    return int(count)


def _record_failure(counters: list[_Counter]) -> None:
    """Count one failure. The window starts with the first and ends window_seconds() later,
    however many follow: the cache's incr() would restart its expiry at every failure."""
    now = time.time()
    for counter in counters:
        count, ends_at = cache.get(counter.cache_key, (0, now + window_seconds()))
        cache.set(counter.cache_key, (count + 1, ends_at), timeout=max(ends_at - now, 1))


def authenticate_key(*, email: str, key: str, address: str) -> ServiceKey:
    """The active key of an administrator matching `email` and `key`, or KeyAuthenticationError.

    The key is checked before any throttle: whoever holds the real key gets its
    answer (accepted, or revoked: reconnect) whatever other callers did. Only
    failed attempts count, per address and email and per address, in the shared
    cache; past a limit the failures from there are answered 429 until the window
    ends, so guessing (and finding out which emails exist) is slowed.
    """
    email = email.strip()
    key = key.strip()
    if not email or not key:
        raise KeyAuthenticationError(
            "missing_credentials",
            _("Send the headers X-SC-Email and X-SC-Key."),
        )
    service_key = _stored_key(email=email, key=key)
    if service_key is None:
        raise _failure(email=email, address=address)
    if service_key.revoked_at is not None:
        raise KeyAuthenticationError(
            "revoked_key",
            _("This SC key was regenerated and no longer works. Reconnect with the new key."),
        )
    if not service_key.member.is_administrator:
        raise KeyAuthenticationError(
            "insufficient_role",
            _("The owner of this SC key is no longer an administrator of the Survey account."),
            status=403,
        )
    now = timezone.now()
    if service_key.last_used_at is None or service_key.last_used_at < now - LAST_USED_RESOLUTION:
        ServiceKey.objects.filter(pk=service_key.pk).update(last_used_at=now)
    return service_key


def _stored_key(*, email: str, key: str) -> ServiceKey | None:
    """The stored key (active or revoked) that is `key`, of the active user with `email`."""
    if not key.startswith(KEY_PREFIX):
        return None
    candidates = ServiceKey.objects.select_related("member__user", "member__account").filter(
        fingerprint__in=crypto.fingerprint_candidates(key, purpose=FINGERPRINT_PURPOSE),
        member__user__email__iexact=email,
        member__user__is_active=True,
    )
    for service_key in candidates:
        try:
            stored = service_key.reveal()
        except crypto.DecryptionError:
            continue  # unreadable (damaged, or encrypted under a secret key that is gone)
        if crypto.constant_time_equals(key, stored):
            return service_key
    return None


def _failure(*, email: str, address: str) -> KeyAuthenticationError:
    """The refusal of a failed attempt, counted; 429 once its address is past a limit."""
    counters = _counters(address, email)
    for counter in counters:
        if _failures(counter) >= counter.limit:
            return _throttled(counter)
    _record_failure(counters)
    if not AccountMember.objects.filter(user__email__iexact=email, user__is_active=True).exists():
        return KeyAuthenticationError(
            "unknown_email", _("No Survey account member has this email address.")
        )
    return KeyAuthenticationError(
        "wrong_key", _("This SC key is not the key of this email address.")
    )
