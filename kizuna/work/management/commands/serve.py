"""`kizuna serve`: the web server (gunicorn, threaded) and the background worker.

Both run as child processes of this one, each in its own session so that Ctrl-C
in a terminal reaches only this process, which then stops them in order: SIGTERM
to both, wait, SIGKILL what is still running after the grace period. A worker
that dies is restarted after a delay; if the web server dies, everything stops
with a non-zero exit code.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from argparse import ArgumentParser
from collections.abc import Callable
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django_tasks_db.management.commands.db_worker import valid_interval

from kizuna.work.management.commands.worker import positive_int
from kizuna.work.startup import check_database, check_port_free
from kizuna.work.workers import DEFAULT_CONCURRENCY

WORKER_RESTART_DELAY_SECONDS = 5.0
GRACE_SECONDS = 20.0


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if `kizuna serve` itself dies (Linux)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except OSError:
        pass


def default_web_processes() -> int:
    # Threads serve the concurrent requests; a few processes add CPU parallelism
    # without multiplying memory (and database connections) too much.
    return max(2, min(os.cpu_count() or 1, 4))


def gunicorn_command(*, bind: str, processes: int, threads: int, access_log: bool) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "kizuna.wsgi:application",
        "--worker-class",
        "gthread",
        "--workers",
        str(processes),
        "--threads",
        str(threads),
        "--bind",
        bind,
        "--graceful-timeout",
        str(int(GRACE_SECONDS) - 5),
        "--timeout",
        "60",
        "--error-logfile",
        "-",
        "--log-level",
        "warning",
    ]
    if access_log:
        command += ["--access-logfile", "-", "--access-logformat", '%(h)s "%(r)s" %(s)s %(M)sms']
    return command


def worker_command(*, interval: float, concurrency: int = DEFAULT_CONCURRENCY) -> list[str]:
    return [
        sys.executable,
        "-m",
        "kizuna",
        "worker",
        "--interval",
        str(interval),
        "--concurrency",
        str(concurrency),
    ]


class Supervisor:
    """Starts the children, restarts the worker, and stops everything on a signal."""

    def __init__(
        self,
        *,
        web: list[str],
        worker: list[str] | None,
        bind: str,
        on_ready: Callable[[], None],
        log: Callable[[str], None],
        worker_restart_delay: float = WORKER_RESTART_DELAY_SECONDS,
    ) -> None:
        self.worker_restart_delay = worker_restart_delay
        self.web_command = web
        self.worker_command = worker
        self.bind = bind
        self.on_ready = on_ready
        self.log = log
        self.stopping = threading.Event()
        self.web: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None

    def _start(self, command: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, start_new_session=True, preexec_fn=_die_with_parent)

    def web_is_listening(self) -> bool:
        host, _, port = self.bind.rpartition(":")
        host = host.strip("[]")
        if host in {"0.0.0.0", "::", ""}:  # noqa: S104
            host = "127.0.0.1"
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                return True
        except OSError:
            return False

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping.is_set():
            # Second Ctrl-C: do not wait for the grace period.
            for child in (self.web, self.worker):
                if child is not None and child.poll() is None:
                    child.kill()
            return
        self.stopping.set()

    def run(self) -> int:
        signal.signal(signal.SIGINT, self.on_signal)
        signal.signal(signal.SIGTERM, self.on_signal)
        self.web = self._start(self.web_command)
        if self.worker_command is not None:
            self.worker = self._start(self.worker_command)
        restart_worker_at: float | None = None
        exit_code = 0
        is_ready = False
        while not self.stopping.wait(0.2):
            if not is_ready and self.web_is_listening():
                is_ready = True
                self.on_ready()
            web_status = self.web.poll()
            if web_status is not None:
                self.log(
                    _("The web server stopped (exit code %(code)s): stopping.")
                    % {"code": web_status}
                )
                exit_code = web_status if web_status > 0 else 1
                break
            if self.worker is not None and self.worker.poll() is not None:
                if restart_worker_at is None:
                    self.log(
                        _("The worker stopped (exit code %(code)s): restarting it in %(delay)s s.")
                        % {"code": self.worker.returncode, "delay": self.worker_restart_delay}
                    )
                    restart_worker_at = time.monotonic() + self.worker_restart_delay
                elif time.monotonic() >= restart_worker_at and self.worker_command is not None:
                    self.worker = self._start(self.worker_command)
                    restart_worker_at = None
        self.stop()
        return exit_code

    def stop(self) -> None:
        children = [c for c in (self.worker, self.web) if c is not None and c.poll() is None]
        for child in children:
            child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


class Command(BaseCommand):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Translated at run time: argparse needs a str, not a lazy string.
        self.help = _("Run Kizuna: the threaded web server and the background worker.")

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--bind",
            default=str(settings.KIZUNA_BIND),
            help=_("HOST:PORT to listen on (default: KIZUNA_BIND, %(default)s)."),
        )
        parser.add_argument(
            "--no-worker",
            action="store_false",
            dest="worker",
            help=_("Serve web requests only; run `kizuna worker` elsewhere."),
        )
        parser.add_argument(
            "--processes",
            type=int,
            default=default_web_processes(),
            help=_("Web server processes (default: %(default)s)."),
        )
        parser.add_argument(
            "--threads",
            type=int,
            default=8,
            help=_("Threads per web server process (default: %(default)s)."),
        )
        parser.add_argument(
            "--access-log",
            action="store_true",
            help=_("Log one line per request."),
        )
        parser.add_argument(
            "--worker-interval",
            # The worker's own check: a value it refuses would only make it restart forever.
            type=valid_interval,
            default=1.0,
            help=_("Seconds the worker waits when idle (default: %(default)s)."),
        )
        parser.add_argument(
            "--concurrency",
            type=positive_int,
            default=DEFAULT_CONCURRENCY,
            help=_(
                "Rows of each kind of work the worker handles at once (webhook deliveries, "
                "emails; default: %(default)s)."
            ),
        )
        parser.add_argument(
            "--worker-restart-delay",
            type=float,
            default=WORKER_RESTART_DELAY_SECONDS,
            help=_("Seconds to wait before restarting a worker that died (default: %(default)s)."),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["processes"] < 1 or options["threads"] < 1:
            raise CommandError(_("--processes and --threads must be at least 1."))
        url = settings.KIZUNA_BASE_URL
        if options["bind"] != str(settings.KIZUNA_BIND):
            url = "http://" + options["bind"].replace("0.0.0.0", "127.0.0.1")  # noqa: S104
        check_database()
        check_port_free(options["bind"])
        supervisor = Supervisor(
            web=gunicorn_command(
                bind=options["bind"],
                processes=options["processes"],
                threads=options["threads"],
                access_log=options["access_log"],
            ),
            worker=worker_command(
                interval=options["worker_interval"], concurrency=options["concurrency"]
            )
            if options["worker"]
            else None,
            bind=options["bind"],
            worker_restart_delay=options["worker_restart_delay"],
            on_ready=lambda: self.announce(url),
            log=lambda message: self.stderr.write(message),
        )
        exit_code = supervisor.run()
        if exit_code != 0:
            raise SystemExit(exit_code)

    def announce(self, url: str) -> None:
        self.stdout.write(_("Kizuna is running at %(url)s (Ctrl-C to stop)") % {"url": url})
        self.stdout.flush()
