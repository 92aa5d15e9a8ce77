"""Reading the environment into settings, with one clear line for a bad value.

Settings must never start half-configured: every variable is parsed here and a
bad value raises ConfigError, which `kizuna` prints as a single line.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import tempfile
import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
from django.core.checks.security.base import (
    SECRET_KEY_INSECURE_PREFIX,
    SECRET_KEY_MIN_LENGTH,
    SECRET_KEY_MIN_UNIQUE_CHARACTERS,
)

KNOWN_SERVICES = ("crm", "survey")
TRUST_TOKEN_MIN_LENGTH = 32
ONE_YEAR = 365 * 24 * 3600


class ConfigError(Exception):
    """A configuration value that Kizuna cannot start with."""


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, *, default: bool = False) -> bool:
    raw = env(name)
    if not raw:
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean: use 1/0, true/false, yes/no or on/off.")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = env(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number.") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r} must be at least {minimum}.")
    return value


def env_seconds(name: str, default: float) -> float:
    """A duration in seconds greater than zero (fractions allowed: 0.5)."""
    raw = env(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds.") from None
    if not 0 < value < float("inf"):
        raise ConfigError(f"{name}={raw!r} must be a number of seconds greater than 0.")
    return value


@dataclass(frozen=True)
class Rate:
    """At most `count` events per `seconds` (a rate limit's setting)."""

    count: int
    seconds: int

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds}"


def env_rate(name: str, default: Rate) -> Rate:
    """A rate written COUNT/SECONDS, for example 30/600: 30 per ten minutes."""
    raw = env(name)
    if not raw:
        return default
    match = re.fullmatch(r"([0-9]+)\s*/\s*([0-9]+)", raw)
    if match is None:
        raise ConfigError(
            f"{name}={raw!r} must be COUNT/SECONDS, for example {default} "
            f"({default.count} per {default.seconds} seconds)."
        )
    rate = Rate(int(match[1]), int(match[2]))
    if rate.count < 1 or rate.seconds < 1:
        raise ConfigError(f"{name}={raw!r}: both numbers must be at least 1.")
    return rate


def env_rate_or_off(name: str, default: Rate) -> Rate | None:
    """A rate as env_rate(), or `off` (None): no limit of this kind at all, not even counted."""
    if env(name).lower() == "off":
        return None
    try:
        return env_rate(name, default)
    except ConfigError as error:
        raise ConfigError(f"{error} Or off: no limit.") from None


def data_dir() -> Path:
    return _writable_directory("KIZUNA_DATA_DIR", Path("var"))


def mailbox_dir(directory: Path) -> Path:
    return _writable_directory("KIZUNA_MAILBOX_DIR", directory / "mailbox")


def _writable_directory(name: str, default: Path) -> Path:
    path = Path(env(name) or default).expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
        # A probe of its own: processes starting together (serve and its worker,
        # several workers) must not remove each other's.
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise ConfigError(
            f"{name}={str(path)!r} is not a writable directory ({error.strerror})."
        ) from None
    return path


def services() -> tuple[str, ...]:
    raw = env("KIZUNA_SERVICES", "crm,survey")
    names = tuple(name.strip().lower() for name in raw.split(",") if name.strip())
    unknown = [name for name in names if name not in KNOWN_SERVICES]
    if unknown or not names:
        raise ConfigError(
            f"KIZUNA_SERVICES={raw!r}: unknown service {', '.join(unknown) or '(none)'}; "
            f"use a comma-separated list of {', '.join(KNOWN_SERVICES)}."
        )
    return names


@dataclass(frozen=True)
class Bind:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def bind() -> Bind:
    raw = env("KIZUNA_BIND", "127.0.0.1:8000")
    host, _, port = raw.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"KIZUNA_BIND={raw!r} must be HOST:PORT, for example 127.0.0.1:8000.")
    return Bind(host.strip("[]"), int(port))


def base_url(fallback_bind: Bind) -> str:
    host = "127.0.0.1" if fallback_bind.host in {"0.0.0.0", "::"} else fallback_bind.host  # noqa: S104
    raw = env("KIZUNA_BASE_URL", f"http://{host}:{fallback_bind.port}")
    return _checked_url("KIZUNA_BASE_URL", raw)


def survey_url(default: str) -> str:
    return _checked_url("SURVEY_URL", env("SURVEY_URL", default))


def _checked_url(name: str, raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ConfigError(f"{name}={raw!r} must be an http:// or https:// URL.")
    return raw.rstrip("/")


def time_zone() -> str:
    raw = env("KIZUNA_TIME_ZONE", "Asia/Tokyo")
    try:
        zoneinfo.ZoneInfo(raw)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"KIZUNA_TIME_ZONE={raw!r} is not a time zone name, for example Asia/Tokyo or UTC."
        ) from None
    return raw


def secret_key(directory: Path) -> str:
    """The configured key, or one generated into the data dir on first start.

    Either must be a key Django's deployment check accepts (security.W009).
    """
    configured = env("KIZUNA_SECRET_KEY")
    if configured:
        return _strong_secret_key("KIZUNA_SECRET_KEY", configured)
    path = directory / "secret_key"
    if not path.exists():
        path.write_text(generate_secret_key())
        path.chmod(0o600)
    return _strong_secret_key(str(path), path.read_text().strip())


def generate_secret_key() -> str:
    return secrets.token_urlsafe(SECRET_KEY_MIN_LENGTH)


def _strong_secret_key(source: str, key: str) -> str:
    how = "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"
    if key.startswith(SECRET_KEY_INSECURE_PREFIX):
        raise ConfigError(
            f"{source} must not start with {SECRET_KEY_INSECURE_PREFIX!r} "
            f"(Django's mark of a development key); {how}."
        )
    if len(key) < SECRET_KEY_MIN_LENGTH or len(set(key)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS:
        raise ConfigError(
            f"{source} must be at least {SECRET_KEY_MIN_LENGTH} characters long with at least "
            f"{SECRET_KEY_MIN_UNIQUE_CHARACTERS} different ones; {how}."
        )
    return key


def secret_key_fallbacks() -> list[str]:
    """Former secret keys, still accepted (sessions, reset links) and still decrypting."""
    return [key.strip() for key in env("KIZUNA_SECRET_KEY_FALLBACKS").split(",") if key.strip()]


def trust_token(key: str) -> str:
    """The configured trust token, or one derived from the secret key."""
    configured = env("KIZUNA_TRUST_TOKEN")
    if not configured:
        return hashlib.sha256(f"kizuna-trust:{key}".encode()).hexdigest()
    if len(configured) < TRUST_TOKEN_MIN_LENGTH:
        raise ConfigError(
            f"KIZUNA_TRUST_TOKEN must be at least {TRUST_TOKEN_MIN_LENGTH} characters long; "
            "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'."
        )
    return configured


def hsts_seconds(base: str) -> int:
    """HSTS max-age: a year by default when the deployment is served over https."""
    return env_int("KIZUNA_HSTS_SECONDS", ONE_YEAR if base.startswith("https://") else 0)


def proxy_ssl_header() -> tuple[str, str] | None:
    """The header a TLS-terminating proxy sets on https requests, as Django's setting wants it.

    Written as in HTTP, for example `X-Forwarded-Proto: https`.
    """
    raw = env("KIZUNA_PROXY_SSL_HEADER")
    if not raw:
        return None
    name, colon, value = raw.partition(":")
    if (
        not colon
        or not re.fullmatch(r"[A-Za-z0-9]+(-[A-Za-z0-9]+)*", name.strip())
        or not value.strip()
    ):
        raise ConfigError(
            f"KIZUNA_PROXY_SSL_HEADER={raw!r} must be NAME: VALUE, "
            "for example X-Forwarded-Proto: https."
        )
    return "HTTP_" + name.strip().upper().replace("-", "_"), value.strip()


def _sqlite(name: str) -> dict[str, Any]:
    """An SQLite database as Kizuna runs it, the embedded one or one named by DATABASE_URL."""
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": name,
        "CONN_MAX_AGE": 600,
        "OPTIONS": {
            # WAL lets readers go on while one writer writes; IMMEDIATE takes the
            # write lock at BEGIN so two writers queue instead of deadlocking.
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                "PRAGMA busy_timeout=20000; PRAGMA foreign_keys=ON;"
            ),
        },
    }


def database(directory: Path) -> dict[str, Any]:
    raw = env("DATABASE_URL")
    if not raw:
        return _sqlite(str(directory / "kizuna.sqlite3"))
    scheme = raw.partition("://")[0].lower()
    if scheme not in {"postgres", "postgresql", "pgsql", "sqlite"}:
        raise ConfigError(
            "DATABASE_URL must be a postgres:// (or postgresql://) or sqlite:/// URL."
        )
    try:
        config = dj_database_url.parse(raw, conn_max_age=600, conn_health_checks=True)
    except (ValueError, KeyError) as error:
        raise ConfigError(f"DATABASE_URL cannot be parsed: {error}") from None
    engine = config.get("ENGINE", "")
    if engine not in {"django.db.backends.postgresql", "django.db.backends.sqlite3"}:
        raise ConfigError(
            "DATABASE_URL must be a postgres:// (or postgresql://) or sqlite:/// URL."
        )
    if engine == "django.db.backends.sqlite3":
        # A file of one's own (CRM and Survey apart, each on its own SQLite): run as the
        # embedded one, or its processes' writers fail with "database is locked".
        if not config.get("NAME") or config["NAME"] == ":memory:":
            raise ConfigError("DATABASE_URL names no SQLite file: sqlite:////path/to/file.")
        return _sqlite(str(config["NAME"]))
    if engine == "django.db.backends.postgresql" and not config.get("NAME"):
        raise ConfigError("DATABASE_URL names no database: add it after the last '/'.")
    if engine == "django.db.backends.postgresql":
        # Django's backend with a health check that polls the socket instead of a SELECT 1.
        config["ENGINE"] = "kizuna.lib.postgresql"
    # Each test run (and each helper running tests side by side) gets its own
    # test databases, so runs on one server never drop each other's.
    run = env("KIZUNA_TEST_RUN", "main")
    config["TEST"] = {"NAME": f"test_kizuna_{run}"}
    return dict(config)
