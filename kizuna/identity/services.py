"""Every write identity makes: sign-in failures (throttling), password reset rate limits
and profile changes.

Throttling counts failed sign-ins for one email from one client address inside a
sliding window (KIZUNA_SIGNIN_MAX_FAILURES within KIZUNA_SIGNIN_WINDOW_SECONDS).
The address is REMOTE_ADDR. Gunicorn sets it to the peer of the socket, and its
--forwarded-allow-ips only lets a trusted proxy set the *scheme* headers; it never
rewrites REMOTE_ADDR from X-Forwarded-For. Behind a reverse proxy, have the proxy
speak the PROXY protocol (gunicorn --proxy-protocol --proxy-allow-from PROXY_IP),
which makes REMOTE_ADDR the real client; otherwise every visitor shares the
proxy's address and the throttle becomes per email only.
"""

from __future__ import annotations

import ipaddress
import math
import unicodedata
from datetime import datetime, timedelta

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from kizuna.identity.models import SignInFailure, User
from kizuna.lib import ratelimit

# SignInFailure.email is a CharField(max_length=254); anything longer is noise.
_EMAIL_LENGTH = 254
_NO_ADDRESS = "0.0.0.0"  # noqa: S104 - stored, never bound


def client_address(request: HttpRequest) -> str:
    """The address throttling counts against (see the module docstring for proxies).

    A server on a Unix socket has no peer address: those requests share one placeholder.
    """
    address = request.META.get("REMOTE_ADDR", "")
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return _NO_ADDRESS


def normalize_sign_in_email(email: str | None) -> str:
    return (email or "").strip().lower()[:_EMAIL_LENGTH]


def _window() -> timedelta:
    return timedelta(seconds=settings.KIZUNA_SIGNIN_WINDOW_SECONDS)


def sign_in_lockout_ends_at(
    *, email: str, address: str, now: datetime | None = None
) -> datetime | None:
    """When this pair may try again, or None when it is not locked out.

    The pair is locked out while the window holds KIZUNA_SIGNIN_MAX_FAILURES
    failures; it frees up when the oldest of the most recent that many expires.
    """
    now = now or timezone.now()
    limit = settings.KIZUNA_SIGNIN_MAX_FAILURES
    recent = list(
        SignInFailure.objects.filter(
            email=normalize_sign_in_email(email), address=address, failed_at__gt=now - _window()
        )
        .order_by("-failed_at")
        .values_list("failed_at", flat=True)[:limit]
    )
    if limit <= 0 or len(recent) < limit:
        return None
    return recent[limit - 1] + _window()


def sign_in_wait_minutes(*, email: str, address: str, now: datetime | None = None) -> int:
    """Whole minutes (rounded up, at least 1) this pair must wait; 0 when not locked out."""
    now = now or timezone.now()
    ends_at = sign_in_lockout_ends_at(email=email, address=address, now=now)
    if ends_at is None:
        return 0
    return max(1, math.ceil((ends_at - now).total_seconds() / 60))


def record_sign_in_failure(*, email: str, address: str) -> None:
    now = timezone.now()
    # Expired failures count for nothing; dropping them keeps the table to one window.
    SignInFailure.objects.filter(failed_at__lte=now - _window()).delete()
    SignInFailure.objects.create(
        email=normalize_sign_in_email(email), address=address, failed_at=now
    )


def clear_sign_in_failures(*, email: str, address: str) -> None:
    SignInFailure.objects.filter(email=normalize_sign_in_email(email), address=address).delete()


def take_password_reset_slot(*, email: str, address: str) -> bool:
    """Count one password reset request; False when no email may be sent for it.

    Limited per client address (one client mailing many people) and per email (many
    clients mailing one person). Counted whether or not an account uses the email,
    so being limited tells nothing about accounts.
    """
    if ratelimit.take(
        "password-reset:address", address, settings.KIZUNA_PASSWORD_RESET_ADDRESS_RATE
    ):
        return False
    # The matching rule of Django's reset form: one person's spellings count together.
    wanted = unicodedata.normalize("NFKC", email.strip()).casefold()
    return not ratelimit.take(
        "password-reset:email", wanted, settings.KIZUNA_PASSWORD_RESET_EMAIL_RATE
    )


def update_profile(*, user: User, full_name: str, language: str) -> None:
    user.full_name = full_name
    user.language = language
    user.save(update_fields=["full_name", "language"])


def set_user_language(*, user: User, language: str) -> None:
    user.language = language
    user.save(update_fields=["language"])
