"""`kizuna serve` as a real process: gunicorn and the worker as its children."""

import signal
import sqlite3
import subprocess
import sys
import time

import httpx
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from kizuna.testing.processes import (
    children,
    command_line,
    database_url,
    descendants,
    free_port,
    is_running,
    kizuna_env,
    start_kizuna,
    stop,
    wait_for,
)
from kizuna.work.management.commands.serve import GRACE_SECONDS
from kizuna.work.models import WorkerProcess

pytestmark = pytest.mark.django_db(transaction=True)


class Served:
    def __init__(self, process, port, log, worker_pids):
        self.process = process
        self.port = port
        self.log = log
        self.worker_pids = worker_pids

    def output(self):
        return self.log.read_text()

    def child_pids(self, command_part):
        return [pid for pid in descendants(self.process.pid) if command_part in command_line(pid)]


@pytest.fixture
def serve(tmp_path):
    """Start `kizuna serve` on a free port against a database the children can reach."""
    if connection.vendor == "postgresql":
        url = database_url()

        def worker_pids():
            return list(WorkerProcess.objects.values_list("pid", flat=True))

    else:
        # The in-memory test database is invisible to other processes: use a file.
        path = tmp_path / "serve.sqlite3"
        url = f"sqlite:///{path}"

        def worker_pids():
            with sqlite3.connect(path) as database:
                return [row[0] for row in database.execute("SELECT pid FROM work_workerprocess")]

    env = kizuna_env(tmp_path, DATABASE_URL=url, KIZUNA_WORKER_LEASE_SECONDS="5")
    if connection.vendor != "postgresql":
        subprocess.run([sys.executable, "-m", "kizuna", "migrate", "-v0"], env=env, check=True)
    port = free_port()
    log = tmp_path / "serve.log"
    process = start_kizuna(
        [
            "serve",
            "--bind",
            f"127.0.0.1:{port}",
            "--processes",
            "1",
            "--threads",
            "2",
            "--worker-interval",
            "0.2",
            "--worker-restart-delay",
            "0.5",
        ],
        env,
        log,
    )
    served = Served(process, port, log, worker_pids)
    try:
        wait_for(
            lambda: f"Kizuna is running at http://127.0.0.1:{port}" in served.output(),
            timeout=30,
            message="serve printed its URL",
        )
        wait_for(served.worker_pids, timeout=30, message="the worker registered")
        yield served
    finally:
        for pid in [process.pid, *descendants(process.pid)]:
            if is_running(pid):
                subprocess.run(["kill", "-9", str(pid)], check=False)
        process.wait()
        print(served.output())


def answers_http(port):
    response = httpx.get(f"http://127.0.0.1:{port}/no-such-page-for-the-serve-test/", timeout=10)
    return response.status_code, response.headers.get("server")


def assert_stops_cleanly(serve, stop_signal):
    (worker,) = serve.child_pids("kizuna worker")
    pids = [*serve.child_pids("gunicorn"), worker]
    assert len(pids) == 3, "gunicorn master, one gthread process and the worker"
    assert worker in serve.worker_pids()
    started = time.monotonic()

    assert stop(serve.process, stop_signal, timeout=GRACE_SECONDS + 10) == 0

    # Stopped within gunicorn's graceful timeout, so nothing was killed: a bound of the
    # promise, not a speed target (a loaded machine takes seconds to end processes).
    assert time.monotonic() - started < GRACE_SECONDS - 5
    assert not [pid for pid in pids if is_running(pid)]
    assert worker not in serve.worker_pids(), "the worker stopped cleanly and unregistered"
    with pytest.raises(httpx.ConnectError):
        answers_http(serve.port)
    assert "Traceback" not in serve.output()


def test_serve_answers_http_and_sigterm_stops_web_server_and_worker_cleanly(serve):
    assert answers_http(serve.port) == (404, "gunicorn")

    assert_stops_cleanly(serve, signal.SIGTERM)


def test_serve_restarts_a_worker_that_died_and_sigint_stops_everything_cleanly(serve):
    (worker,) = serve.child_pids("kizuna worker")

    subprocess.run(["kill", "-9", str(worker)], check=True)

    restarted = wait_for(
        lambda: [pid for pid in serve.child_pids("kizuna worker") if pid != worker],
        timeout=15,
        message="a new worker process",
    )
    assert len(restarted) == 1
    assert "The worker stopped (exit code -9)" in serve.output()
    assert serve.process.poll() is None
    assert answers_http(serve.port) == (404, "gunicorn")
    wait_for(
        lambda: restarted[0] in serve.worker_pids(),
        timeout=15,
        message="the new worker registered",
    )
    assert_stops_cleanly(serve, signal.SIGINT)
    # The killed worker could not unregister: its row stays, with an old heartbeat.
    assert serve.worker_pids() == [worker]


def test_serve_stops_the_worker_and_fails_when_the_web_server_dies(serve):
    gunicorn = serve.child_pids("gunicorn")
    (master,) = [pid for pid in children(serve.process.pid) if pid in gunicorn]
    (worker,) = serve.child_pids("kizuna worker")

    subprocess.run(["kill", "-9", str(master)], check=True)

    assert serve.process.wait(timeout=15) != 0
    assert not is_running(worker)
    assert "The web server stopped" in serve.output()


@pytest.mark.parametrize("interval", ["-1", "nan"])
def test_serve_refuses_a_worker_interval_the_worker_would_refuse(interval):
    with pytest.raises(CommandError, match="--worker-interval"):
        call_command("serve", "--worker-interval", interval)
