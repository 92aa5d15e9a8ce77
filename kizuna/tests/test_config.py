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


def run_kizuna(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KIZUNA_", "DATABASE_"))}
    return subprocess.run(
        [sys.executable, "-m", "kizuna", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
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
            "KIZUNA_SURVEY_SUBMIT_RATE='30 per minute' must be COUNT/SECONDS, for example 30/600",
        ),
        (
            {"KIZUNA_SURVEY_SUBMIT_RATE": "0/600"},
            "KIZUNA_SURVEY_SUBMIT_RATE='0/600': both numbers must be at least 1",
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

    with pytest.raises(config.ConfigError, match="at least 32 characters"):
        config.secret_key(Path("/nonexistent"))


def test_postgres_urls_get_a_test_database_name_per_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db.example:5432/kizuna")
    monkeypatch.setenv("KIZUNA_TEST_RUN", "abc")

    database = config.database(Path("/nonexistent"))

    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert database["NAME"] == "kizuna"
    assert database["CONN_MAX_AGE"] == 600
    assert database["TEST"] == {"NAME": "test_kizuna_abc"}


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
