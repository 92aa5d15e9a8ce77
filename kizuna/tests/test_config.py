"""Start-up configuration: defaults that work, and one clear line for a bad value."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.db import connection

from kizuna import config

# A guard against a hung command, not a measure: a migrate takes 5 s of CPU, which a machine
# loaded 20 times over stretches past a minute.
SUBPROCESS_TIMEOUT = 300


def run_kizuna(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    # Without the test run's own settings (and the async switch only Playwright tests need).
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KIZUNA_", "DATABASE_", "DJANGO_ALLOW_ASYNC_UNSAFE"))
    }
    return subprocess.run(
        [sys.executable, "-m", "kizuna", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATABASE_URL": "mysql://nobody@localhost/x"}, "DATABASE_URL must be a postgres://"),
        ({"DATABASE_URL": "postgres://localhost:notaport/x"}, "DATABASE_URL cannot be parsed"),
        ({"KIZUNA_SERVICES": "crm,billing"}, "unknown service billing"),
        ({"KIZUNA_BIND": "localhost"}, "KIZUNA_BIND='localhost' must be HOST:PORT"),
        ({"KIZUNA_DEBUG": "maybe"}, "KIZUNA_DEBUG='maybe' is not a boolean"),
        ({"KIZUNA_SMTP_SECURITY": "tls1"}, "must be none, starttls or ssl"),
        ({"SURVEY_URL": "survey.example.com"}, "SURVEY_URL='survey.example.com' must be an http"),
        ({"KIZUNA_TIME_ZONE": "Mars/Base"}, "KIZUNA_TIME_ZONE='Mars/Base' is not a time zone"),
        ({"DATABASE_URL": "nonsense"}, "DATABASE_URL must be a postgres://"),
        ({"KIZUNA_SMTP_PORT": "0"}, "KIZUNA_SMTP_PORT='0' must be at least 1"),
        (
            {"KIZUNA_WEBHOOK_TIMEOUT_SECONDS": "fast"},
            "KIZUNA_WEBHOOK_TIMEOUT_SECONDS='fast' is not a number of seconds",
        ),
        (
            {"KIZUNA_WEBHOOK_CONNECT_TIMEOUT_SECONDS": "0"},
            "KIZUNA_WEBHOOK_CONNECT_TIMEOUT_SECONDS='0' must be a number of seconds greater than 0",
        ),
        ({"KIZUNA_SC_KEY_MAX_FAILURES": "0"}, "KIZUNA_SC_KEY_MAX_FAILURES='0' must be at least 1"),
        (
            {"KIZUNA_SC_KEY_WINDOW_SECONDS": "15m"},
            "KIZUNA_SC_KEY_WINDOW_SECONDS='15m' is not a whole number",
        ),
        (
            {"KIZUNA_IMPORT_BACKGROUND_ROWS": "-1"},
            "KIZUNA_IMPORT_BACKGROUND_ROWS='-1' must be at least 0",
        ),
        (
            {"KIZUNA_SURVEY_SUBMIT_RATE": "30 per minute"},
            "KIZUNA_SURVEY_SUBMIT_RATE='30 per minute' must be COUNT/SECONDS, for example 600/600",
        ),
        (
            {"KIZUNA_SURVEY_SUBMIT_RATE": "0/600"},
            "KIZUNA_SURVEY_SUBMIT_RATE='0/600': both numbers must be at least 1",
        ),
        (
            {"KIZUNA_SURVEY_PAGE_RATE": "5000"},
            "KIZUNA_SURVEY_PAGE_RATE='5000' must be COUNT/SECONDS, for example 5000/3600",
        ),
        (
            {"KIZUNA_SURVEY_UNKNOWN_LINK_RATE": "100/0"},
            "KIZUNA_SURVEY_UNKNOWN_LINK_RATE='100/0': both numbers must be at least 1",
        ),
        (
            {"KIZUNA_SURVEY_MIN_SECONDS": "-1"},
            "KIZUNA_SURVEY_MIN_SECONDS='-1' must be at least 0",
        ),
        (
            {"KIZUNA_PASSWORD_RESET_ADDRESS_RATE": "20/hour"},
            "KIZUNA_PASSWORD_RESET_ADDRESS_RATE='20/hour' must be COUNT/SECONDS, "
            "for example 20/3600",
        ),
        (
            {"KIZUNA_PASSWORD_RESET_EMAIL_RATE": "3/0"},
            "KIZUNA_PASSWORD_RESET_EMAIL_RATE='3/0': both numbers must be at least 1",
        ),
        (
            {"KIZUNA_WORKER_LEASE_SECONDS": "0"},
            "KIZUNA_WORKER_LEASE_SECONDS='0' must be at least 1",
        ),
        (
            {"KIZUNA_SIGNIN_WINDOW_SECONDS": "0"},
            "KIZUNA_SIGNIN_WINDOW_SECONDS='0' must be at least 1",
        ),
        (
            {"KIZUNA_MAILBOX_DIR": "/proc/kizuna"},
            "KIZUNA_MAILBOX_DIR='/proc/kizuna' is not a writable",
        ),
        (
            {"KIZUNA_SECRET_KEY": "test-secret-key-for-the-suite-only-0123456789"},
            "KIZUNA_SECRET_KEY must be at least 50 characters long with at least 5 different ones",
        ),
        (
            {"KIZUNA_SECRET_KEY": "abcd" * 20},
            "KIZUNA_SECRET_KEY must be at least 50 characters long with at least 5 different ones",
        ),
        (
            {"KIZUNA_SECRET_KEY": "django-insecure-" + "x0-9a-zA-Z_" * 5},
            "KIZUNA_SECRET_KEY must not start with 'django-insecure-'",
        ),
        (
            {"KIZUNA_TRUST_TOKEN": "shared-but-short"},
            "KIZUNA_TRUST_TOKEN must be at least 32 characters long",
        ),
        (
            {"KIZUNA_TRUST_TOKEN_MAX_FAILURES": "none"},
            "KIZUNA_TRUST_TOKEN_MAX_FAILURES='none' is not a whole number",
        ),
        (
            {"KIZUNA_TRUST_TOKEN_WINDOW_SECONDS": "0"},
            "KIZUNA_TRUST_TOKEN_WINDOW_SECONDS='0' must be at least 1",
        ),
        ({"KIZUNA_HSTS_SECONDS": "-1"}, "KIZUNA_HSTS_SECONDS='-1' must be at least 0"),
        ({"KIZUNA_HSTS_INCLUDE_SUBDOMAINS": "all"}, "KIZUNA_HSTS_INCLUDE_SUBDOMAINS='all' is not"),
        ({"KIZUNA_HSTS_PRELOAD": "later"}, "KIZUNA_HSTS_PRELOAD='later' is not a boolean"),
        ({"KIZUNA_SSL_REDIRECT": "maybe"}, "KIZUNA_SSL_REDIRECT='maybe' is not a boolean"),
        (
            {"KIZUNA_PROXY_SSL_HEADER": "X-Forwarded-Proto"},
            "KIZUNA_PROXY_SSL_HEADER='X-Forwarded-Proto' must be NAME: VALUE",
        ),
        (
            {"KIZUNA_PROXY_SSL_HEADER": "X_Forwarded_Proto: https"},
            "KIZUNA_PROXY_SSL_HEADER='X_Forwarded_Proto: https' must be NAME: VALUE",
        ),
    ],
)
def test_a_bad_value_stops_start_up_with_one_clear_line(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    result = run_kizuna({"KIZUNA_DATA_DIR": str(tmp_path), **env}, "check")

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("kizuna: configuration error: ")
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_an_unwritable_data_dir_stops_start_up_with_one_clear_line(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("not a directory")

    result = run_kizuna({"KIZUNA_DATA_DIR": str(a_file / "data")}, "check")

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "KIZUNA_DATA_DIR=" in result.stderr
    assert "is not a writable directory" in result.stderr


def test_the_default_database_is_sqlite_in_wal_mode_inside_the_data_dir(tmp_path: Path) -> None:
    result = run_kizuna({"KIZUNA_DATA_DIR": str(tmp_path)}, "migrate", "-v", "0")

    assert result.returncode == 0, result.stderr
    database = tmp_path / "kizuna.sqlite3"
    assert database.exists()
    with sqlite3.connect(database) as sqlite:
        assert sqlite.execute("pragma journal_mode").fetchone()[0] == "wal"


def test_a_secret_key_is_generated_on_first_start_and_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KIZUNA_SECRET_KEY", raising=False)

    first = config.secret_key(tmp_path)
    second = config.secret_key(tmp_path)

    assert first == second
    assert len(first) >= 50
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_a_configured_secret_key_must_be_long_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIZUNA_SECRET_KEY", "short")

    with pytest.raises(config.ConfigError, match="at least 50 characters"):
        config.secret_key(Path("/nonexistent"))


def test_a_weak_key_in_the_data_dir_stops_start_up_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_text("written-by-hand-and-too-short\n")

    result = run_kizuna({"KIZUNA_DATA_DIR": str(tmp_path)}, "check")

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert f"{tmp_path / 'secret_key'} must be at least 50 characters long" in result.stderr


def test_an_https_deployment_passes_djangos_deployment_checks_with_its_defaults(
    tmp_path: Path,
) -> None:
    env = {
        "KIZUNA_DATA_DIR": str(tmp_path),
        "KIZUNA_BASE_URL": "https://kizuna.example.com",
        "KIZUNA_ALLOWED_HOSTS": "kizuna.example.com",
    }

    result = run_kizuna(env, "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def https_settings(tmp_path: Path, **env: str) -> str:
    script = (
        "from django.conf import settings as s\n"
        "print(repr((s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS,"
        " s.SECURE_HSTS_PRELOAD, s.SECURE_SSL_REDIRECT, s.SECURE_PROXY_SSL_HEADER)))\n"
    )
    base = {"KIZUNA_DATA_DIR": str(tmp_path), "KIZUNA_BASE_URL": "https://kizuna.example.com"}
    result = run_kizuna({**base, **env}, "shell", "-c", script)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()[-1]


def test_https_turns_on_hsts_for_a_year_and_the_redirect_to_https(tmp_path: Path) -> None:
    assert https_settings(tmp_path) == "(31536000, True, False, True, None)"


def test_hsts_and_the_redirect_can_be_turned_off_and_a_proxy_header_named(tmp_path: Path) -> None:
    chosen = https_settings(
        tmp_path,
        KIZUNA_HSTS_SECONDS="0",
        KIZUNA_SSL_REDIRECT="false",
        KIZUNA_PROXY_SSL_HEADER="X-Forwarded-Proto: https",
    )

    assert chosen == "(0, True, False, False, ('HTTP_X_FORWARDED_PROTO', 'https'))"


def test_plain_http_deployments_get_neither_hsts_nor_a_redirect(tmp_path: Path) -> None:
    assert https_settings(tmp_path, KIZUNA_BASE_URL="http://127.0.0.1:8000") == (
        "(0, True, False, False, None)"
    )


def test_postgres_urls_get_a_test_database_name_per_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db.example:5432/kizuna")
    monkeypatch.setenv("KIZUNA_TEST_RUN", "abc")

    database = config.database(Path("/nonexistent"))

    assert database["ENGINE"] == "kizuna.lib.postgresql"
    assert database["NAME"] == "kizuna"
    assert database["CONN_MAX_AGE"] == 600
    assert database["CONN_HEALTH_CHECKS"] is True
    assert database["TEST"] == {"NAME": "test_kizuna_abc"}


def test_a_sqlite_database_url_runs_as_the_embedded_database_does(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """CRM and Survey apart, each on an SQLite file of its own: without WAL, IMMEDIATE and the
    busy timeout, a second process writing answers "database is locked" (a 500)."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    embedded = config.database(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'survey.sqlite3'}")

    database = config.database(Path("/nonexistent"))

    assert database["NAME"] == str(tmp_path / "survey.sqlite3")
    assert {**database, "NAME": embedded["NAME"]} == embedded
    assert database["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "PRAGMA journal_mode=WAL;" in database["OPTIONS"]["init_command"]
    assert "PRAGMA busy_timeout=20000;" in database["OPTIONS"]["init_command"]


def test_a_sqlite_database_url_without_a_file_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite://")

    with pytest.raises(config.ConfigError, match="names no SQLite file"):
        config.database(Path("/nonexistent"))


def test_services_default_to_both_and_accept_either_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KIZUNA_SERVICES", raising=False)
    assert config.services() == ("crm", "survey")
    monkeypatch.setenv("KIZUNA_SERVICES", " Survey ")
    assert config.services() == ("survey",)


def test_connections_are_persistent() -> None:
    assert connection.settings_dict["CONN_MAX_AGE"] == 600


def test_a_survey_only_process_serves_no_crm_pages(tmp_path: Path) -> None:
    script = (
        "from django.urls import resolve, Resolver404\n"
        "import sys\n"
        "for path in ('/crm/', '/survey/', '/s/x/'):\n"
        "    try:\n"
        "        resolve(path); print(path, 'served')\n"
        "    except Resolver404:\n"
        "        print(path, 'not served')\n"
    )
    result = run_kizuna(
        {"KIZUNA_DATA_DIR": str(tmp_path), "KIZUNA_SERVICES": "survey"}, "shell", "-c", script
    )

    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("/")]
    assert lines == ["/crm/ not served", "/survey/ served", "/s/x/ served"]


def test_processes_starting_together_in_one_data_dir_all_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIZUNA_DATA_DIR", str(tmp_path))
    errors: list[BaseException] = []

    def start() -> None:
        try:
            for _ in range(200):
                config.data_dir()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert list(tmp_path.iterdir()) == []


def test_settings_of_the_environment_are_parsed_once_into_their_types(tmp_path: Path) -> None:
    script = (
        "from django.conf import settings as s\n"
        "print(repr((s.KIZUNA_WEBHOOK_TIMEOUT_SECONDS, s.KIZUNA_WEBHOOK_CONNECT_TIMEOUT_SECONDS,"
        " s.KIZUNA_SC_KEY_MAX_FAILURES, s.KIZUNA_SC_KEY_WINDOW_SECONDS,"
        " s.KIZUNA_IMPORT_BACKGROUND_ROWS, s.KIZUNA_WORKER_LEASE_SECONDS,"
        " str(s.KIZUNA_SURVEY_SUBMIT_RATE), s.KIZUNA_MAILBOX_DIR.name)))\n"
    )
    env = {
        "KIZUNA_DATA_DIR": str(tmp_path),
        "KIZUNA_WEBHOOK_TIMEOUT_SECONDS": "2.5",
        "KIZUNA_WEBHOOK_CONNECT_TIMEOUT_SECONDS": "0.5",
        "KIZUNA_SC_KEY_MAX_FAILURES": "3",
        "KIZUNA_SC_KEY_WINDOW_SECONDS": "60",
        "KIZUNA_IMPORT_BACKGROUND_ROWS": "0",
        "KIZUNA_WORKER_LEASE_SECONDS": "12",
        "KIZUNA_SURVEY_SUBMIT_RATE": " 5 / 60 ",
        "KIZUNA_MAILBOX_DIR": str(tmp_path / "mail"),
    }

    result = run_kizuna(env, "shell", "-c", script)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "(2.5, 0.5, 3, 60, 0, 12, '5/60', 'mail')"
    assert (tmp_path / "mail").is_dir()


def test_former_secret_keys_are_read_as_a_list_for_a_rotation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KIZUNA_SECRET_KEY_FALLBACKS", " old-key-one , ,old-key-two")

    assert config.secret_key_fallbacks() == ["old-key-one", "old-key-two"]


@pytest.mark.parametrize("raw", ["off", " OFF "])
def test_12_a_survey_limit_written_off_is_no_limit(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("KIZUNA_SURVEY_SUBMIT_RATE", raw)

    assert config.env_rate_or_off("KIZUNA_SURVEY_SUBMIT_RATE", config.Rate(600, 600)) is None


def test_every_survey_limit_per_address_can_be_switched_off(tmp_path: Path) -> None:
    names = (
        "KIZUNA_SURVEY_SUBMIT_RATE",
        "KIZUNA_SURVEY_PAGE_RATE",
        "KIZUNA_SURVEY_UNKNOWN_LINK_RATE",
    )
    script = (
        "from django.conf import settings as s\n"
        f"print(repr(tuple(getattr(s, name) for name in {names!r})))\n"
    )

    result = run_kizuna(
        {"KIZUNA_DATA_DIR": str(tmp_path), **dict.fromkeys(names, "off")}, "shell", "-c", script
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "(None, None, None)"


def test_a_survey_limit_that_is_neither_a_rate_nor_off_says_both_are_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KIZUNA_SURVEY_PAGE_RATE", "none")

    with pytest.raises(config.ConfigError) as raised:
        config.env_rate_or_off("KIZUNA_SURVEY_PAGE_RATE", config.Rate(5000, 3600))

    assert str(raised.value) == (
        "KIZUNA_SURVEY_PAGE_RATE='none' must be COUNT/SECONDS, for example 5000/3600 "
        "(5000 per 3600 seconds). Or off: no limit."
    )


def test_12_a_survey_limit_not_off_is_a_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIZUNA_SURVEY_SUBMIT_RATE", "5/60")

    assert config.env_rate_or_off(
        "KIZUNA_SURVEY_SUBMIT_RATE", config.Rate(600, 600)
    ) == config.Rate(5, 60)
