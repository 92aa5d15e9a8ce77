import logging
from datetime import timedelta

import pytest
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from kizuna.work.models import WorkerProcess
from kizuna.work.retry import (
    finish_successfully,
    finish_with_error,
    policy_for,
    recover_abandoned_tasks,
    retrying,
)
from kizuna.work.tests import sample_tasks
from kizuna.work.workers import KizunaWorker

pytestmark = pytest.mark.django_db


def make_worker(worker_id="w-test"):
    return KizunaWorker(queue_names=["default"], interval=0, batch=True, worker_id=worker_id)


def db_result(task_result):
    return DBTaskResult.objects.get(pk=task_result.id)


def make_due_now(result):
    DBTaskResult.objects.filter(pk=result.pk).update(run_after=timezone.now())


def test_an_opted_in_task_that_raises_goes_back_to_ready_with_back_off():
    enqueued = sample_tasks.fails_until_third_attempt.enqueue()
    before = timezone.now()

    assert make_worker().run_one_task()

    result = db_result(enqueued)
    assert result.status == TaskResultStatus.READY
    assert result.worker_ids == ["w-test"]
    assert result.exception_class_path == "kizuna.work.tests.sample_tasks.Boom"
    assert "attempt 1" in result.traceback
    assert result.finished_at is None
    # base 10 s, +-20% jitter
    assert before + timedelta(seconds=8) <= result.run_after
    assert result.run_after <= timezone.now() + timedelta(seconds=12)
    assert not make_worker().run_one_task(), "not due before its back-off"


def test_an_opted_in_task_succeeds_on_a_later_attempt():
    enqueued = sample_tasks.fails_until_third_attempt.enqueue()
    worker = make_worker()
    worker.run_one_task()
    make_due_now(db_result(enqueued))
    worker.run_one_task()
    second = db_result(enqueued)
    assert second.status == TaskResultStatus.READY
    # the second back-off doubles the first: 20 s +-20%
    assert second.run_after >= timezone.now() + timedelta(seconds=15)
    make_due_now(second)

    worker.run_one_task()

    result = db_result(enqueued)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == "ok"
    assert result.worker_ids == ["w-test", "w-test", "w-test"]
    assert result.exception_class_path == ""
    assert result.traceback == ""


def test_an_opted_in_task_fails_for_good_after_max_attempts():
    enqueued = sample_tasks.always_fails_with_retries.enqueue()
    worker = make_worker()
    worker.run_one_task()
    assert db_result(enqueued).status == TaskResultStatus.READY
    make_due_now(db_result(enqueued))

    worker.run_one_task()

    result = db_result(enqueued)
    assert result.status == TaskResultStatus.FAILED
    assert len(result.worker_ids) == 2
    assert result.finished_at is not None
    assert result.exception_class_path == "kizuna.work.tests.sample_tasks.Boom"


def test_a_task_that_did_not_opt_in_fails_once():
    enqueued = sample_tasks.always_fails.enqueue()
    worker = make_worker()

    assert worker.run_one_task()

    result = db_result(enqueued)
    assert result.status == TaskResultStatus.FAILED
    assert result.worker_ids == ["w-test"]
    assert "Boom: once" in result.traceback
    assert not worker.run_one_task()
    assert db_result(enqueued).status == TaskResultStatus.FAILED


def test_a_successful_task_records_its_return_value():
    enqueued = sample_tasks.succeeds.enqueue(21)

    make_worker().run_one_task()

    assert db_result(enqueued).status == TaskResultStatus.SUCCESSFUL
    assert db_result(enqueued).return_value == 42


def test_a_return_value_that_cannot_be_stored_fails_the_task():
    enqueued = sample_tasks.returns_something_unstorable.enqueue()

    make_worker().run_one_task()

    assert db_result(enqueued).status == TaskResultStatus.FAILED
    assert "TypeError" in db_result(enqueued).exception_class_path


def test_retrying_registers_the_policy_by_task_path_above_or_below_task():
    policy = policy_for("kizuna.work.tests.sample_tasks.fails_until_third_attempt")
    assert policy is not None
    assert policy.max_attempts == 3
    assert policy_for("kizuna.work.tests.sample_tasks.always_fails") is None
    assert policy_for("kizuna.work.tests.no_such_module.task") is None

    @retrying(max_attempts=4)
    def plain_function():
        pass

    policy = policy_for(f"{__name__}.{plain_function.__qualname__}")
    assert policy is not None
    assert policy.max_attempts == 4


def test_retrying_rejects_nonsense_policies():
    with pytest.raises(ValueError, match="max_attempts"):
        retrying(max_attempts=0)
    with pytest.raises(ValueError, match="base_seconds"):
        retrying(base_seconds=10, max_seconds=5)


# Recovery ---------------------------------------------------------------------


def running(task, *, worker_ids, started_seconds_ago=120):
    enqueued = task.enqueue()
    DBTaskResult.objects.filter(pk=enqueued.id).update(
        status=TaskResultStatus.RUNNING,
        worker_ids=worker_ids,
        started_at=timezone.now() - timedelta(seconds=started_seconds_ago),
    )
    return db_result(enqueued)


def worker_process(worker_id, *, seconds_since_heartbeat):
    return WorkerProcess.objects.create(
        worker_id=worker_id,
        hostname="host",
        pid=1,
        heartbeat_at=timezone.now() - timedelta(seconds=seconds_since_heartbeat),
    )


@pytest.fixture
def lease(settings):
    settings.KIZUNA_WORKER_LEASE_SECONDS = 30
    return 30


def test_recovery_puts_a_retrying_task_of_a_dead_worker_back_to_ready(lease):
    worker_process("dead", seconds_since_heartbeat=lease + 5)
    result = running(sample_tasks.fails_until_third_attempt, worker_ids=["dead"])

    recovered = recover_abandoned_tasks()

    assert [(r.task_id, r.worker_id, r.status) for r in recovered] == [
        (str(result.pk), "dead", TaskResultStatus.READY)
    ]
    result.refresh_from_db()
    assert result.status == TaskResultStatus.READY
    assert result.exception_class_path == "kizuna.work.retry.WorkerDied"
    assert "Worker dead stopped sending heartbeats" in result.traceback
    assert result.run_after > timezone.now()


def test_recovery_fails_a_task_that_did_not_opt_in_with_a_worker_died_reason(lease):
    worker_process("dead", seconds_since_heartbeat=lease + 5)
    result = running(sample_tasks.always_fails, worker_ids=["dead"])

    recover_abandoned_tasks()

    result.refresh_from_db()
    assert result.status == TaskResultStatus.FAILED
    assert result.finished_at is not None
    assert result.task_result.errors[0].exception_class_path == "kizuna.work.retry.WorkerDied"
    assert "Worker dead stopped sending heartbeats" in result.traceback


def test_recovery_fails_a_retrying_task_without_attempts_left(lease):
    worker_process("dead", seconds_since_heartbeat=lease + 5)
    result = running(sample_tasks.always_fails_with_retries, worker_ids=["a", "dead"])

    recover_abandoned_tasks()

    result.refresh_from_db()
    assert result.status == TaskResultStatus.FAILED


def test_recovery_leaves_the_task_of_a_live_worker_alone(lease):
    worker_process("alive", seconds_since_heartbeat=1)
    result = running(sample_tasks.always_fails, worker_ids=["dead-earlier", "alive"])

    assert recover_abandoned_tasks() == []

    result.refresh_from_db()
    assert result.status == TaskResultStatus.RUNNING


def test_recovery_leaves_a_task_started_within_the_lease_alone(lease):
    result = running(sample_tasks.always_fails, worker_ids=["unknown"], started_seconds_ago=5)

    assert recover_abandoned_tasks() == []
    assert recover_abandoned_tasks(now=timezone.now() + timedelta(seconds=lease)) != []
    result.refresh_from_db()
    assert result.status == TaskResultStatus.FAILED


def test_only_one_of_two_recovering_workers_acts(lease):
    worker_process("dead", seconds_since_heartbeat=lease + 5)
    result = running(sample_tasks.fails_until_third_attempt, worker_ids=["dead"])
    seen_by_the_other_worker = DBTaskResult.objects.get(pk=result.pk)

    assert len(recover_abandoned_tasks()) == 1
    # The other worker read the row while it was RUNNING; its update must not apply.
    assert (
        finish_with_error(seen_by_the_other_worker, exception_class_path="x", traceback="x") is None
    )
    result.refresh_from_db()
    assert result.exception_class_path == "kizuna.work.retry.WorkerDied"


def test_a_worker_whose_task_was_recovered_cannot_record_its_late_result(lease):
    worker_process("slow", seconds_since_heartbeat=lease + 5)
    result = running(sample_tasks.succeeds, worker_ids=["slow"])
    recover_abandoned_tasks()  # FAILED: succeeds does not retry

    assert not finish_successfully(result, 42)

    result.refresh_from_db()
    assert result.status == TaskResultStatus.FAILED
    assert result.return_value is None


def test_a_task_reclaimed_by_another_worker_cannot_be_finished_by_the_first():
    result = running(sample_tasks.succeeds, worker_ids=["first"])
    DBTaskResult.objects.filter(pk=result.pk).update(worker_ids=["first", "second"])

    assert not finish_successfully(result, 1)
    assert finish_with_error(result, exception_class_path="x", traceback="x") is None


def worker_log(caplog) -> list[tuple[str, str]]:
    return [
        (record.levelname, record.getMessage())
        for record in caplog.records
        if record.name == "kizuna.work.workers"
    ]


def test_a_failed_attempt_that_will_run_again_is_a_warning_and_a_final_failure_an_error(caplog):
    retried = sample_tasks.fails_until_third_attempt.enqueue()
    failed = sample_tasks.always_fails.enqueue()
    worker = make_worker()

    with caplog.at_level(logging.INFO, logger="kizuna.work.workers"):
        assert worker.run_one_task()
        assert worker.run_one_task()

    path = "kizuna.work.tests.sample_tasks"
    assert worker_log(caplog) == [
        (
            "WARNING",
            f"Task {retried.id} ({path}.fails_until_third_attempt) failed on attempt 1 with "
            "Boom: attempt 1; now READY",
        ),
        (
            "ERROR",
            f"Task {failed.id} ({path}.always_fails) failed on attempt 1 with Boom: once; "
            "now FAILED",
        ),
    ]


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        (
            sample_tasks.is_taken_over_then_succeeds,
            "Task {id} finished, but it was taken from worker w-test meanwhile (its heartbeat "
            "was lost): that result is not recorded.",
        ),
        (
            sample_tasks.is_taken_over_then_fails,
            "Task {id} failed, but it was taken from worker w-test meanwhile.",
        ),
    ],
    ids=["succeeds", "fails"],
)
def test_a_task_taken_over_while_it_ran_keeps_the_other_worker_s_claim(caplog, sample, message):
    enqueued = sample.enqueue()

    with caplog.at_level(logging.INFO, logger="kizuna.work.workers"):
        assert make_worker().run_one_task()

    result = db_result(enqueued)
    assert (result.status, result.worker_ids) == (TaskResultStatus.RUNNING, ["w-test", "second"])
    assert (result.return_value, result.exception_class_path) == (None, "")
    assert worker_log(caplog) == [("WARNING", message.format(id=enqueued.id))]


def test_a_task_gets_the_arguments_it_was_enqueued_with_by_position_and_by_name():
    with_context = sample_tasks.describes_its_call.enqueue(1, second=2)
    plain = sample_tasks.succeeds.enqueue(value=21)
    worker = make_worker()

    assert worker.run_one_task() and worker.run_one_task()

    assert db_result(with_context).return_value == "attempt 1: 1, 2"
    assert db_result(plain).return_value == 42


def test_a_worker_of_every_queue_runs_the_tasks_of_the_default_queue():
    enqueued = sample_tasks.succeeds.enqueue(1)
    worker = KizunaWorker(queue_names=["*"], interval=0, batch=True, worker_id="w-all")

    assert worker.run_one_task()

    assert db_result(enqueued).status == TaskResultStatus.SUCCESSFUL


def test_a_worker_signals_each_task_s_start_and_end_and_a_failing_receiver_stops_nothing(
    caplog,
):
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks_db.compat import task_finished, task_started

    seen: list[tuple[str, bool, str, str]] = []

    def on_start(sender, task_result, **kwargs):
        seen.append(("started", issubclass(sender, BaseTaskBackend), task_result.id, ""))

    def on_finish(sender, task_result, **kwargs):
        seen.append(
            ("finished", issubclass(sender, BaseTaskBackend), task_result.id, task_result.status)
        )
        if task_result.id == broken.id:
            raise RuntimeError("a broken receiver")

    succeeded = sample_tasks.succeeds.enqueue(1)
    retried = sample_tasks.fails_until_third_attempt.enqueue()
    failed = sample_tasks.always_fails.enqueue()
    broken = sample_tasks.always_fails.enqueue()
    task_started.connect(on_start)
    task_finished.connect(on_finish)
    worker = make_worker()
    try:
        with caplog.at_level(logging.INFO, logger="kizuna.work.workers"):
            while worker.run_one_task():
                pass
    finally:
        task_started.disconnect(on_start)
        task_finished.disconnect(on_finish)

    assert seen == [
        ("started", True, succeeded.id, ""),
        ("finished", True, succeeded.id, TaskResultStatus.SUCCESSFUL),
        ("started", True, retried.id, ""),  # to run again later: not finished
        ("started", True, failed.id, ""),
        ("finished", True, failed.id, TaskResultStatus.FAILED),
        ("started", True, broken.id, ""),
        ("finished", True, broken.id, TaskResultStatus.FAILED),
    ]
    assert db_result(broken).status == TaskResultStatus.FAILED
    assert worker_log(caplog)[-1] == ("ERROR", f"Task {broken.id} failed unexpectedly")
