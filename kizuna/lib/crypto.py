"""Small secrets at rest (SC keys, webhook signing secrets) and comparing them safely.

Secrets that must be shown again (K1) cannot be hashed, so they are encrypted with
Fernet under a key derived from SECRET_KEY by HKDF. Keys derived from
SECRET_KEY_FALLBACKS still decrypt, so rotating the secret key loses nothing.
Lookups use a keyed fingerprint (HMAC-SHA256), never the secret itself.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.utils.crypto import constant_time_compare

__all__ = [
    "DecryptionError",
    "constant_time_equals",
    "decrypt_secret",
    "encrypt_secret",
    "fingerprint",
    "fingerprint_candidates",
]

_ENCRYPTION_INFO = b"kizuna.lib.crypto:fernet:v1"
_FINGERPRINT_INFO = b"kizuna.lib.crypto:fingerprint:v1"


class DecryptionError(Exception):
    """The stored value was not encrypted under any current or fallback secret key."""


def _secret_keys() -> list[str]:
    """The current secret key first, then the fallbacks (they only decrypt and look up)."""
    return [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]


def _derive(secret_key: str, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
        secret_key.encode()
    )


def _fernet() -> MultiFernet:
    return _fernet_of(tuple(_secret_keys()))


@functools.lru_cache(maxsize=8)
def _fernet_of(secret_keys: tuple[str, ...]) -> MultiFernet:
    """Built once per list of secret keys: deriving the keys (HKDF) was most of the CPU of a
    decryption, which the worker makes for every webhook delivery it signs."""
    return MultiFernet(
        [Fernet(base64.urlsafe_b64encode(_derive(key, _ENCRYPTION_INFO))) for key in secret_keys]
    )


def encrypt_secret(plaintext: str) -> str:
    """An opaque token (ASCII) holding `plaintext`, safe to store in the database."""
    return _fernet().encrypt(plaintext.encode()).decode("ascii")


def decrypt_secret(token: str) -> str:
    """The plaintext of a value made by encrypt_secret(); DecryptionError if it is not one."""
    return _decrypt(token, tuple(_secret_keys()))


@functools.lru_cache(maxsize=1024)
def _decrypt(token: str, secret_keys: tuple[str, ...]) -> str:
    """Kept per token and secret keys: the worker signs every webhook delivery with its
    endpoint's secret, and the CRM checks every one it receives, hundreds a second (a
    decryption checks an HMAC and decrypts AES: 40 us). A token no key decrypts is not kept."""
    try:
        return _fernet_of(secret_keys).decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError) as error:
        raise DecryptionError("The stored secret cannot be decrypted.") from error


def fingerprint(value: str, *, purpose: str) -> str:
    """A keyed, deterministic digest of `value` (hex), to find a secret by index.

    `purpose` separates the digests of different kinds of secrets.
    """
    return _fingerprint_with(settings.SECRET_KEY, value, purpose=purpose)


def fingerprint_candidates(value: str, *, purpose: str) -> list[str]:
    """fingerprint() under the current and every fallback secret key (for lookups)."""
    return [_fingerprint_with(key, value, purpose=purpose) for key in _secret_keys()]


def _fingerprint_with(secret_key: str, value: str, *, purpose: str) -> str:
    key = _derive(secret_key, _FINGERPRINT_INFO + b":" + purpose.encode())
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def constant_time_equals(given: str | bytes, expected: str | bytes) -> bool:
    """Compare two secrets in time independent of where they first differ."""
    return constant_time_compare(given, expected)
