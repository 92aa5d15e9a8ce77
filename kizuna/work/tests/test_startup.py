"""`kizuna serve` and `kizuna worker` refuse to start, in one line, when they cannot work."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

# A guard against a hung command, not a measure: a migrate takes 5 s of CPU, which a machine
# loaded 20 times over stretches past a minute.
SUBPROCESS_TIMEOUT = 300


def run_kizuna(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KIZUNA_", "DATABASE_"))}
    return subprocess.run(
        [sys.executable, "-m", "kizuna", *args],
        env={**clean, "KIZUNA_DATA_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_an_unreachable_database_stops_start_up_with_one_line(tmp_path: Path, command: str) -> None:
    result = run_kizuna(tmp_path, command, DATABASE_URL="postgres://nobody@127.0.0.1:1/kizuna")

    assert result.returncode == 1
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("CommandError: Cannot use the database (check DATABASE_URL): ")
    assert "Kizuna is running" not in result.stdout


def test_an_unmigrated_database_asks_for_migrate(tmp_path: Path) -> None:
    result = run_kizuna(tmp_path, "serve")

    assert result.returncode == 1
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert "The database is not up to date: run `kizuna migrate` first" in lines[0]


def test_a_port_in_use_stops_serve_with_one_line(tmp_path: Path) -> None:
    assert run_kizuna(tmp_path, "migrate", "-v", "0").returncode == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = run_kizuna(tmp_path, "serve", KIZUNA_BIND=f"127.0.0.1:{port}")

    assert result.returncode == 1
    assert error_lines(result) == [
        f"CommandError: 127.0.0.1:{port} is already in use: "
        "stop what listens there or set KIZUNA_BIND."
    ]
    assert "Kizuna is running" not in result.stdout
