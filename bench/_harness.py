"""What every benchmark shares: ports, servers, waiting, databases, the machine, the results.

Import it from a script under bench/ (`from _harness import ...`: scripts run with bench/ on
sys.path). Files whose names start with `_` are not benchmarks: `make bench` skips them.

Results: `record(...)` merges one figure into docs/benchmarks.json, the machine-readable
record of the last run of each figure:

    {"machine": ..., "date": ..., "results": [{"id", "value", "unit", "baseline", "ratio",
     "target", "met", "note"}]}

`docs/benchmarks.md` keeps the tables and what limits each figure. `quick()` is true under
`make bench QUICK=1` (every benchmark small enough for the whole run to finish in minutes).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = ROOT / "docs" / "benchmarks.json"
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def quick() -> bool:
    """True under `make bench QUICK=1`: use the small sizes."""
    return os.environ.get("KIZUNA_BENCH_QUICK", "") not in ("", "0")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_up(url: str, timeout: float = 30) -> None:
    """Wait until `url` answers anything at all (an HTTP error status counts as up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server at {url} did not start")


def kizuna_env(data_dir: str, **extra: str) -> dict[str, str]:
    """The environment of a Kizuna process of a benchmark: its own data dir, SQLite unless
    `DATABASE_URL` is passed in `extra`."""
    env = {
        **os.environ,
        "KIZUNA_DATA_DIR": data_dir,
        "DJANGO_SETTINGS_MODULE": "kizuna.settings",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("DATABASE_URL", None)
    env.update(extra)
    return env


def gunicorn(
    app: str, port: int, env: dict[str, str], *, workers: int = 2, threads: int = 8
) -> subprocess.Popen[bytes]:
    """A gunicorn gthread server on loopback, as `kizuna serve` runs it (its own session, so
    `stop()` ends its workers too)."""
    command = [
        str(BIN / "gunicorn"),
        app,
        "-k",
        "gthread",
        "-w",
        str(workers),
        "--threads",
        str(threads),
        "-b",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
    ]
    return subprocess.Popen(
        command,
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group, then wait."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    process.wait(timeout=30)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` and all its living descendants (Linux /proc)."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == pid or _descends_from(int(entry.name), pid):
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _descends_from(process: int, ancestor: int) -> bool:
    while process > 1:
        try:
            stat = (Path("/proc") / str(process) / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
        except OSError:
            return False
        if parent == ancestor:
            return True
        process = parent
    return False


@contextmanager
def postgres_database(name: str) -> Iterator[str | None]:
    """A fresh PostgreSQL database `name` for the run, dropped afterwards; None (and a line on
    stderr) when PostgreSQL is not reachable."""
    try:
        import psycopg
    except ImportError:
        yield None
        return
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {name}")
    except psycopg.Error as error:
        print(f"PostgreSQL skipped: {error}", file=sys.stderr)
        yield None
        return
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def machine() -> str:
    """One line naming the machine, for the tables and the JSON record."""
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{os.cpu_count()} cores{memory}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def record(
    id: str,
    value: float,
    unit: str,
    *,
    target: str,
    met: bool,
    baseline: float | None = None,
    ratio: float | None = None,
    note: str = "",
) -> None:
    """Merge one figure into docs/benchmarks.json (replacing the figure of the same id)."""
    data: dict[str, Any] = {"machine": "", "date": "", "results": []}
    if RESULTS.exists():
        data = json.loads(RESULTS.read_text(encoding="utf-8"))
    data["machine"] = machine()
    data["date"] = datetime.date.today().isoformat()
    figure = {
        "id": id,
        "value": round(value, 3),
        "unit": unit,
        "baseline": None if baseline is None else round(baseline, 3),
        "ratio": None if ratio is None else round(ratio, 3),
        "target": target,
        "met": met,
        "note": note,
    }
    results = [item for item in data.get("results", []) if item.get("id") != id]
    data["results"] = sorted([*results, figure], key=lambda item: item["id"])
    RESULTS.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
