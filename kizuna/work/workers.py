"""The `kizuna worker` process: heartbeat, recovery, django-tasks tasks and leased work.

- Each registered kind of leased work (webhook deliveries, CRM mail, ...) runs in a
  lane of its own (kizuna/work/lanes.py): up to --concurrency rows at once, with a
  cap per endpoint, so a slow receiver never delays other work.
- The main thread takes back work abandoned by dead workers every heartbeat
  interval (retry.recover_abandoned_tasks; leased rows are taken back by
  leases.claim) and deletes expired sessions, runs the periodic jobs apps register
  (kizuna/work/periodic.py: probing failing webhook endpoints), runs django-tasks-db
  tasks one at a time, and logs what the lanes did once a minute.
- A heartbeat thread refreshes this process's WorkerProcess row and renews the
  leases of the rows the lanes hold.
- On PostgreSQL a listener wakes a lane when a transaction that wrote its kind of
  work commits (kizuna/work/wakeup.py), and idle lanes poll every few seconds for
  retries falling due; on SQLite they poll every 0.25 s (or --interval if shorter).

`--batch` runs every kind in the main thread instead (leases.run_due_work) until
nothing is due. SIGINT or SIGTERM lets the items in hand finish, then the worker
deletes its row and exits; a second signal exits at once (the task in hand is
recorded as failed or retried, leased rows come back when their lease runs out).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from importlib import import_module
from types import FrameType

from django.conf import settings
from django.db import DatabaseError, OperationalError, close_old_connections, connections
from django.utils import timezone
from django.utils.crypto import get_random_string
from django_tasks_db.compat import TaskContext, TaskResultStatus, task_finished, task_started
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult
from django_tasks_db.utils import exclusive_transaction, is_locked_database_exception

from kizuna.work import lanes, leases, periodic, retry, wakeup
from kizuna.work.models import WorkerProcess, heartbeat_seconds

logger = logging.getLogger(__name__)

ERROR_PAUSE_SECONDS = 5.0
# Rows of one kind running at once in one worker. Deliveries and mail wait on the
# network, not the CPU, so two cores serve eight of them well.
DEFAULT_CONCURRENCY = 8
REPORT_SECONDS = 60.0
# Rows of killed workers stay this long, for whoever investigates what happened.
FORGET_DEAD_WORKERS_AFTER = timedelta(days=7)


def new_worker_id() -> str:
    """host-pid-random, at most 64 characters (django-tasks-db's limit)."""
    suffix = f"-{os.getpid()}-{get_random_string(8)}"
    return socket.gethostname()[: 64 - len(suffix)] + suffix


def live_workers() -> list[WorkerProcess]:
    """Worker processes whose heartbeat is fresh: empty means no work gets done."""
    return list(WorkerProcess.objects.alive())


def register_worker(worker_id: str) -> WorkerProcess:
    now = timezone.now()
    process, _ = WorkerProcess.objects.update_or_create(
        worker_id=worker_id,
        defaults={
            "hostname": socket.gethostname()[:255],
            "pid": os.getpid(),
            "started_at": now,
            "heartbeat_at": now,
        },
    )
    return process


def beat(worker_id: str) -> None:
    """Refresh this worker's heartbeat (re-registering if its row was pruned)."""
    if not WorkerProcess.objects.filter(worker_id=worker_id).update(heartbeat_at=timezone.now()):
        register_worker(worker_id)


def unregister_worker(worker_id: str) -> None:
    WorkerProcess.objects.filter(worker_id=worker_id).delete()


def forget_dead_workers(*, older_than: timedelta = FORGET_DEAD_WORKERS_AFTER) -> int:
    """Delete rows of workers silent for long: their leases and tasks are long recovered."""
    deleted, _ = WorkerProcess.objects.filter(heartbeat_at__lt=timezone.now() - older_than).delete()
    return deleted


def forget_expired_sessions() -> None:
    """Delete expired sessions: anonymous respondents' unfinished answers end after a day."""
    engine = import_module(settings.SESSION_ENGINE)
    engine.SessionStore.clear_expired()


class Heartbeat(threading.Thread):
    """Beats for one worker every `interval` seconds until stopped."""

    def __init__(
        self, worker_id: str, *, interval: float, on_beat: Callable[[], None] | None = None
    ) -> None:
        super().__init__(name=f"heartbeat-{worker_id}", daemon=True)
        self.worker_id = worker_id
        self.interval = interval
        self.on_beat = on_beat
        self._stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self._stopped.wait(self.interval):
                try:
                    beat(self.worker_id)
                    if self.on_beat is not None:
                        self.on_beat()
                except Exception:
                    # A database hiccup must not kill the thread: the next beat may
                    # get through before the lease runs out.
                    logger.exception("Heartbeat of worker %s failed", self.worker_id)
                    connections.close_all()
        finally:
            connections.close_all()

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=self.interval + 5)


class KizunaWorker(Worker):
    """django-tasks-db's Worker with heartbeats, retries, recovery and leased work."""

    def __init__(
        self,
        *,
        queue_names: list[str],
        interval: float,
        batch: bool,
        backend_name: str = "default",
        worker_id: str | None = None,
        startup_delay: bool = False,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        super().__init__(
            queue_names=queue_names,
            interval=interval,
            batch=batch,
            backend_name=backend_name,
            startup_delay=startup_delay,
            max_tasks=None,
            worker_id=worker_id or new_worker_id(),
            excluded_queue_names=[],
        )
        self._wake = threading.Event()
        self._last_recovery = 0.0
        self.concurrency = max(1, concurrency)
        self.lanes: list[lanes.Lane] = []
        self.is_listening = False

    # Signals -----------------------------------------------------------------

    def shutdown(self, signum: int, frame: FrameType | None) -> None:
        if not self.running:
            logger.warning("Received %s again: stopping now.", signal.strsignal(signum))
            self.reset_signals()
            sys.exit(1)
        logger.info(
            "Received %s: stopping after the current item (send it again to stop now).",
            signal.strsignal(signum),
        )
        self.running = False
        self._wake.set()
        for lane in self.lanes:
            lane.wake.set()

    def is_stopping(self) -> bool:
        return not self.running

    # The loop ------------------------------------------------------------------

    def run(self) -> None:
        register_worker(self.worker_id)
        if not self.batch:
            self.lanes = lanes.lanes_for(
                leases.registrations(),
                worker_id=self.worker_id,
                concurrency=self.concurrency,
                poll_seconds=max(self.interval, 0.05),
                should_stop=self.is_stopping,
            )
        heartbeat = Heartbeat(
            self.worker_id, interval=self.beat_seconds(), on_beat=self.renew_leases
        )
        heartbeat.start()
        listener: wakeup.Listener | None = None
        if self.lanes:
            self.set_listening(False)
            if wakeup.is_available():
                listener = wakeup.Listener(on_wake=self.wake_lanes, on_state=self.set_listening)
                listener.start()
        for lane in self.lanes:
            lane.start()
        logger.info(
            "Worker %s started (queues %s; lanes %s)",
            self.worker_id,
            ",".join(self.queue_names),
            ", ".join(f"{lane.label} x{lane.threads}" for lane in self.lanes) or "none",
        )
        reporter = lanes.Reporter(self.lanes, worker_id=self.worker_id, every=REPORT_SECONDS)
        stopped_cleanly = False
        try:
            while self.running:
                close_old_connections()
                try:
                    did_something = self.run_one_round()
                except DatabaseError:
                    if self.batch:
                        raise
                    # The database went away (restart, failover): keep the process
                    # and try again shortly, rather than die and lose the heartbeat.
                    logger.exception("Worker %s: database error, retrying", self.worker_id)
                    connections.close_all()
                    self._wake.wait(ERROR_PAUSE_SECONDS)
                    continue
                reporter.tick()
                if did_something:
                    continue
                if self.batch:
                    logger.info("Worker %s: nothing left to do, exiting.", self.worker_id)
                    break
                close_old_connections()
                self._wake.wait(max(self.interval, 0.05) if self.lanes else self.interval)
            self.running = False
            if listener is not None:
                listener.stop()
            for lane in self.lanes:
                lane.stop()
            for lane in self.lanes:
                lane.join()
            stopped_cleanly = True
        finally:
            heartbeat.stop()
            if listener is not None:
                listener.stop()
            if stopped_cleanly:
                try:
                    unregister_worker(self.worker_id)
                except Exception:
                    logger.exception("Worker %s could not unregister", self.worker_id)
            # Otherwise (forced stop, crash) the row stays and goes stale: whatever
            # this worker still holds is then taken back by the others.
            logger.info("Worker %s stopped", self.worker_id)

    def beat_seconds(self) -> float:
        """Often enough to keep the worker alive and to renew the shortest lease in time."""
        shortest = min((lane.registration.model.lease_seconds for lane in self.lanes), default=None)
        beat = heartbeat_seconds()
        return beat if shortest is None else min(beat, max(shortest / 4, 0.2))

    def wake_lanes(self, label: str) -> None:
        """A transaction that wrote `label` work committed ("": anything may be due)."""
        for lane in self.lanes:
            if not label or lane.label == label:
                lane.wake.set()

    def set_listening(self, listening: bool) -> None:
        if listening:
            poll = max(self.interval, wakeup.LISTENING_POLL_SECONDS)
        elif wakeup.is_available():
            poll = max(self.interval, 0.05)
        else:
            poll = max(min(self.interval, wakeup.SQLITE_POLL_SECONDS), 0.05)
        for lane in self.lanes:
            lane.poll_seconds = poll
            lane.wake.set()  # sleep again with the new interval
        # Last: once it reads True, the lanes were woken with the new interval.
        self.is_listening = listening

    def renew_leases(self) -> None:
        for lane in self.lanes:
            lane.renew_leases()

    def run_one_round(self) -> bool:
        """Recover if due, then run one task; in --batch, also one batch of leased work."""
        self.recover_if_due()
        periodic.run_due()
        if self.run_one_task():
            return True
        if not self.running or self.lanes:
            return False
        return leases.run_due_work(worker_id=self.worker_id, should_stop=self.is_stopping) > 0

    def recover_if_due(self) -> None:
        if time.monotonic() - self._last_recovery < heartbeat_seconds():
            return
        self._last_recovery = time.monotonic()
        retry.recover_abandoned_tasks()
        forget_dead_workers()
        forget_expired_sessions()

    def claim_task(self) -> DBTaskResult | None:
        tasks = DBTaskResult.objects.ready().filter(backend_name=self.backend_name)
        if not self.process_all_queues:
            tasks = tasks.filter(queue_name__in=self.queue_names)
        try:
            with exclusive_transaction(tasks.db):
                result = tasks.get_locked()
                if result is not None:
                    result.claim(self.worker_id)
                return result
        except OperationalError as error:
            if is_locked_database_exception(error):
                return None  # SQLite is busy; try again on the next round
            raise

    def run_one_task(self) -> bool:
        result = self.claim_task()
        if result is None:
            return False
        self.run_task(result)
        return True

    def run_task(self, db_task_result: DBTaskResult) -> None:
        """Run a claimed task; record success, a retry or a failure, if it is still ours."""
        self.running_task = True
        try:
            task = db_task_result.task
            task_result = db_task_result.task_result
            backend_type = type(task.get_backend())
            task_started.send(sender=backend_type, task_result=task_result)
            if task.takes_context:
                value = task.call(
                    TaskContext(task_result=task_result), *task_result.args, **task_result.kwargs
                )
            else:
                value = task.call(*task_result.args, **task_result.kwargs)
            # Inside the try, like django-tasks-db: a return value that cannot be
            # stored (not JSON) is recorded as the task's failure.
            if not retry.finish_successfully(db_task_result, value):
                logger.warning(
                    "Task %s finished, but it was taken from worker %s meanwhile "
                    "(its heartbeat was lost): that result is not recorded.",
                    db_task_result.pk,
                    self.worker_id,
                )
                return
            task_finished.send(sender=backend_type, task_result=db_task_result.task_result)
        except BaseException as error:
            self._record_error(db_task_result, error)
            if not isinstance(error, Exception):
                raise  # SystemExit from a second signal: stop now
        finally:
            self.running_task = False
            self._run_tasks += 1

    def _record_error(self, db_task_result: DBTaskResult, error: BaseException) -> None:
        try:
            status = retry.finish_with_exception(db_task_result, error)
        except Exception:
            logger.exception("Task %s: could not record its failure", db_task_result.pk)
            return
        if status is None:
            logger.warning(
                "Task %s failed, but it was taken from worker %s meanwhile.",
                db_task_result.pk,
                self.worker_id,
            )
            return
        logger.log(
            logging.WARNING if status == TaskResultStatus.READY else logging.ERROR,
            "Task %s (%s) failed on attempt %d with %s: %s; now %s",
            db_task_result.pk,
            db_task_result.task_path,
            len(db_task_result.worker_ids),
            type(error).__name__,
            error,
            status,
        )
        if status == TaskResultStatus.READY:
            return  # it will run again: not finished
        try:
            task_finished.send(
                sender=type(db_task_result.task.get_backend()),
                task_result=db_task_result.task_result,
            )
        except Exception:
            logger.exception("Task %s failed unexpectedly", db_task_result.pk)
