"""What every benchmark shares: ports, servers, waiting, databases, the machine, the results.

Import it from a script under bench/ (`from _harness import ...`: scripts run with bench/ on
sys.path). Files whose names start with `_` are not benchmarks: `make bench` skips them.

Results: `record(...)` merges one figure into docs/benchmarks.json, the machine-readable
record of the last run of each figure:

    {"machine": ..., "date": ..., "results": [{"id", "value", "unit", "baseline", "ratio",
     "target", "met", "note"}]}

`docs/benchmarks.md` keeps the tables and what limits each figure. `quick()` is true under
`make bench QUICK=1` (every benchmark small enough for the whole run to finish in minutes);
its figures go to var/benchmarks-quick.json, never over those of a full run.
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
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = ROOT / "docs" / "benchmarks.json"
QUICK_RESULTS = ROOT / "var" / "benchmarks-quick.json"
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def quick() -> bool:
    """True under `make bench QUICK=1`: use the small sizes."""
    return os.environ.get("KIZUNA_BENCH_QUICK", "") not in ("", "0")


def recording() -> bool:
    """True under `make bench`: every benchmark records its figures (`record()`) as if it
    had been given its --record (or --write) option."""
    return os.environ.get("KIZUNA_BENCH_RECORD", "") not in ("", "0")


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
    `DATABASE_URL` is passed in `extra`. A data dir without a database gets a copy of the
    migrated template (`migrated_sqlite`), so the benchmark's own `migrate` finds nothing to
    do."""
    env = {
        **os.environ,
        "KIZUNA_DATA_DIR": data_dir,
        "DJANGO_SETTINGS_MODULE": "kizuna.settings",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("DATABASE_URL", None)
    env.update(extra)
    if "DATABASE_URL" not in env:
        migrated_sqlite(Path(data_dir))
    return env


# Migrating a fresh database took 45-60 s on the loaded 2-core machine (6.5 s of CPU), about
# twenty times in one `make bench QUICK=1`: each benchmark database starts as a copy of one
# migrated per version of the migrations instead (SQLite: a file under var/; PostgreSQL: a
# template database). Its name carries a hash of every migration file and the Django version.


def _migrations_hash() -> str:
    import hashlib

    import django

    digest = hashlib.sha256(django.get_version().encode())
    for path in sorted((ROOT / "kizuna").rglob("migrations/*.py")):
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _migrate(env: dict[str, str]) -> None:
    for command in (["migrate", "-v", "0"], ["createcachetable", "-v", "0"]):
        subprocess.run([str(BIN / "kizuna"), *command], env=env, check=True, cwd=ROOT)


def migrated_sqlite(data_dir: Path) -> None:
    """Put a migrated SQLite database into `data_dir` unless it has one."""
    import fcntl
    import sqlite3

    target = data_dir / "kizuna.sqlite3"
    if target.exists():
        return
    template_dir = ROOT / "var" / "bench-templates" / _migrations_hash()
    template_dir.mkdir(parents=True, exist_ok=True)
    template = template_dir / "kizuna.sqlite3"
    with (template_dir / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two benchmarks at once migrate it once
        if not (template_dir / "done").exists():
            template.unlink(missing_ok=True)
            env = {**os.environ, "KIZUNA_DATA_DIR": str(template_dir), "PYTHONPATH": str(ROOT)}
            env.pop("DATABASE_URL", None)
            _migrate(env)
            (template_dir / "done").touch()
    # The backup API copies a database in WAL mode whole, whatever its WAL holds.
    data_dir.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(template) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    with sqlite3.connect(target) as copy:
        copy.execute("PRAGMA journal_mode=WAL")


def _postgres_template(admin: Any) -> str:
    """The name of the migrated template database, migrated first if missing."""
    name = f"bench_template_{_migrations_hash()}"
    # One advisory lock per template: runs side by side (other worktrees) migrate it once.
    admin.execute("SELECT pg_advisory_lock(hashtext(%s))", [name])
    try:
        ready = admin.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s AND datistemplate", [name]
        ).fetchone()
        if not ready:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {name}")
            url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
            env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
            env.setdefault("KIZUNA_DATA_DIR", str(ROOT / "var" / "bench-templates"))
            _migrate(env)
            admin.execute(f"ALTER DATABASE {name} WITH IS_TEMPLATE true")
    finally:
        admin.execute("SELECT pg_advisory_unlock(hashtext(%s))", [name])
    return name


def gunicorn(
    app: str, port: int, env: dict[str, str], *, workers: int | None = None, threads: int = 8
) -> subprocess.Popen[bytes]:
    """A gunicorn gthread server on loopback, as `kizuna serve` runs it (its own session, so
    `stop()` ends its workers too): 2 processes, or 1 in a quick run (a process start is
    seconds of a loaded machine, and a quick run checks that the benchmark works)."""
    if workers is None:
        workers = 1 if quick() else 2
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
    return start(command, env)


def start(
    command: list[str], env: dict[str, str], *, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """A server or worker process in its own session (so `stop()` ends its children too),
    its output to `log` or nowhere."""
    output = log.open("ab") if log is not None else subprocess.DEVNULL
    return subprocess.Popen(
        command,
        env=env,
        cwd=ROOT,
        stdout=output,
        stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL,
        start_new_session=True,
    )


def kizuna(
    args: list[str], env: dict[str, str], *, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """A `kizuna <args>` process (`worker`, `serve`) in its own session, output to `log`."""
    return start([str(BIN / "kizuna"), *args], env, log=log)


def stop(process: subprocess.Popen[bytes], *, timeout: float = 30) -> float:
    """SIGTERM to the process group, then wait (SIGKILL after `timeout` seconds).

    Returns the highest peak RSS (MB) of the process and its children, read just before
    (a gunicorn master's workers: the peak of one web process over the run), 0 if gone.
    """
    peak = 0.0
    for pid in [process.pid, *children(process.pid)]:
        with suppress(OSError, RuntimeError):
            peak = max(peak, peak_rss_mb(pid))
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return peak
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)
    return peak


def peak_rss_mb(pid: int) -> float:
    """The peak resident set of one process so far (VmHWM in /proc), in MB (2**20 bytes)."""
    for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def children(pid: int) -> list[int]:
    """The living descendants of `pid` (a gunicorn master's workers)."""
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _descends_from(int(entry.name), pid)
    ]


def in_threads(works: Sequence[Callable[[], None]]) -> float:
    """Run each of `works` in a thread of its own, all at once; the seconds until all are done."""
    threads = [threading.Thread(target=work) for work in works]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


def timed_ms(func: Callable[[], Any], repeat: int) -> list[float]:
    """Call `func` once to warm caches and plans, then `repeat` times: the milliseconds of
    each call, sorted."""
    func()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        samples.append((time.perf_counter() - start) * 1000)
    return sorted(samples)


def percentile95(samples: list[float]) -> float:
    """The 95th percentile of sorted `samples` (the nearest rank)."""
    return samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]


def load_average() -> str:
    """The machine's load averages (1, 5, 15 minutes), to record beside each figure."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f}"


def load_one_minute() -> float:
    """The 1-minute load average alone, for a figure that keeps the highest seen in its run."""
    return os.getloadavg()[0]


def wait_for(
    condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05
) -> float:
    """Poll `condition` every `interval` seconds until true; the seconds it took.
    RuntimeError naming `what` on timeout."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - started


# A real SMTP server for the mail benchmarks: aiosmtpd in a process of its own (not a
# thread of the benchmark, whose Python would share its GIL), writing the Message-ID of
# each message it accepts as one line of a file.


class SmtpSink:
    """An aiosmtpd server in a child process; `message_ids()` reads what it accepted."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.path = directory / f"smtp-{self.port}.ids"
        self.path.write_text("")
        self.process = subprocess.Popen(
            [sys.executable, __file__, "smtp-sink", str(self.port), str(self.path)],
            cwd=ROOT,
            start_new_session=True,
        )
        wait_for(self._listening, timeout=30, what="the SMTP server to listen")

    def _listening(self) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def message_ids(self) -> list[str]:
        return self.path.read_text().splitlines()

    def check_each_arrived_once(self, sent: Collection[str]) -> None:
        """The server holds each of `sent` (Message-IDs) exactly once, and nothing else."""
        received = Counter(self.message_ids())
        twice = sum(1 for seen in received.values() if seen > 1)
        assert set(received) == set(sent), "the server's Message-IDs differ from the outbox's"
        assert twice == 0, f"{twice} Message-IDs arrived more than once"

    def count(self) -> int:
        with self.path.open("rb") as file:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: file.read(1 << 16), b""))

    def clear(self) -> None:
        self.path.write_text("")

    def stop(self) -> None:
        stop(self.process)


def _run_smtp_sink(port: int, path: str) -> None:
    import re

    from aiosmtpd.controller import Controller

    message_id = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)
    # Opened for appending: clear() truncates the file under it.
    output = Path(path).open("ab", buffering=0)  # noqa: SIM115

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            head = envelope.content.split(b"\r\n\r\n", 1)[0]
            found = message_id.search(head)
            output.write((found.group(1) if found else b"-") + b"\n")
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    controller.stop()


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of the one process `pid` (Linux /proc; OSError once it is
    gone, or when it is another user's and unreadable)."""
    fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_backends_cpu(connection: Any) -> dict[int, float]:
    """CPU seconds of each PostgreSQL server process working for `connection`'s database
    (pg_stat_activity; /proc of the same machine), this connection's own excepted: the
    database's share of a benchmark, which no client process counts. Empty elsewhere."""
    if connection.vendor != "postgresql":
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        pids = [row[0] for row in cursor.fetchall()]
    found = {}
    for pid in pids:
        try:
            found[pid] = process_cpu(pid)
        except OSError:
            continue
    return found


def cpu_since(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two postgres_backends_cpu() readings (a process that
    started in between counts from zero; one that ended in between is not counted)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` and all its living descendants (Linux /proc)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        if int(entry.name) == pid or _descends_from(int(entry.name), pid):
            try:
                total += process_cpu(int(entry.name))
            except OSError:
                continue
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
    """A fresh PostgreSQL database for the run, `name` and this process's id (two runs at
    once must not drop each other's), migrated (a copy of the template of this version of
    the migrations), dropped afterwards; None (and a line on stderr) when PostgreSQL is not
    reachable."""
    name = f"{name}_{os.getpid()}"
    try:
        import psycopg
    except ImportError:
        yield None
        return
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {name} TEMPLATE {_postgres_template(admin)}")
    except psycopg.Error as error:
        print(f"PostgreSQL skipped: {error}", file=sys.stderr)
        yield None
        return
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def analyze() -> None:
    """Fresh planner statistics after a bulk load (what autovacuum does within a minute; the
    machines that run these benchmarks may have it off). Without them PostgreSQL planned the
    foreign-key checks of a send's rows on a lead table it took for empty: a sequential scan
    of every lead for each row, at the commit of each part."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


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
    """Merge one figure into docs/benchmarks.json (replacing the figure of the same id).

    A quick run (`make bench QUICK=1`, small sizes) writes var/benchmarks-quick.json instead:
    its figures do not replace those of a full run.
    """
    path = QUICK_RESULTS if quick() else RESULTS
    data: dict[str, Any] = {"machine": "", "date": "", "results": []}
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
    data["machine"] = machine()
    data["date"] = datetime.datetime.now(datetime.UTC).date().isoformat()
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
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__" and sys.argv[1:2] == ["smtp-sink"]:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    _run_smtp_sink(int(sys.argv[2]), sys.argv[3])


def ten_question_survey() -> tuple[Any, dict[str, Any]]:
    """In a child process with Django set up: the 10-question single-page survey of issue 11
    (one question of every kind) and a valid answer to it, as the POSTed form."""
    from kizuna.identity.models import User
    from kizuna.survey.models import Question, Survey
    from kizuna.survey.services import create_account

    owner = User.objects.create_user("bench@example.com", "bench-password-0123456789")
    account = create_account(name="Bench", owner=owner)
    survey = Survey.objects.create(portal=account.portals.get(), title="Bench survey")
    choices = [{"key": k, "label": k.upper()} for k in ("a", "b", "c", "d")]
    matrix = {
        "rows": [{"key": "r1", "label": "R1"}, {"key": "r2", "label": "R2"}],
        "columns": [{"key": "c1", "label": "C1"}, {"key": "c2", "label": "C2"}],
    }
    specs: list[tuple[str, dict[str, Any], Any]] = [
        ("single_choice", {"choices": choices}, "b"),
        ("multiple_choice", {"choices": choices}, ["a", "c"]),
        ("rating", {}, "4"),
        ("nps", {}, "9"),
        ("short_text", {}, "Quick and friendly service, thank you."),
        ("long_text", {}, "The form was short.\nThe staff answered every question."),
        ("matrix", matrix, {"r1": "c1", "r2": "c2"}),
        ("number", {"min": 0, "max": 100}, "42"),
        ("date", {}, "2026-01-02"),
        ("dropdown", {"choices": choices}, "d"),
    ]
    form: dict[str, Any] = {"page": "1", "action": "submit"}
    for position, (kind, options, answer) in enumerate(specs):
        question = Question.objects.create(
            survey=survey,
            kind=kind,
            text=kind,
            options=options,
            position=position,
            is_required=True,
        )
        if isinstance(answer, dict):
            form.update({f"q{question.pk}-{row}": column for row, column in answer.items()})
        else:
            form[f"q{question.pk}"] = answer
    return survey, form


def child_result(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run a benchmark's child process; the JSON object of the last line it printed."""
    done = subprocess.run(command, env=env, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def child_in_database(
    command: list[str], database: str, *, prefix: str, postgres_name: str
) -> dict[str, Any] | None:
    """child_result() in a new data dir, on a copy of the migrated SQLite template or, for
    "postgresql", on a fresh database `postgres_name` (None when PostgreSQL is not reachable)."""
    directory = str(Path(tempfile.mkdtemp(prefix=prefix)))
    if database == "postgresql":
        with postgres_database(postgres_name) as url:
            if url is None:
                return None
            return child_result(command, kizuna_env(directory, DATABASE_URL=url))
    return child_result(command, kizuna_env(directory))
