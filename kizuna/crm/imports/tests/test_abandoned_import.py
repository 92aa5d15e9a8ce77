"""A background import (or check) whose task fails for good, for example because its
worker was killed on each of its 3 attempts, ends as a failed job with a clear message,
and its progress page stops polling."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from kizuna.crm.imports import services
from kizuna.crm.imports.models import ImportJob, ImportStatus
from kizuna.crm.models import Lead, Membership, Organization
from kizuna.identity.models import User
from kizuna.testing.csvfiles import EN_HEADERS, csv_bytes, lead_rows
from kizuna.work.retry import finish_with_error, recover_abandoned_tasks

POLLING = 'hx-trigger="every 1s"'
HTMX = {"HX-Request": "true"}


def _job(organization: Organization, by: User) -> ImportJob:
    return services.create_import_job(
        organization=organization,
        by=by,
        module="leads",
        filename="big.csv",
        data=csv_bytes([EN_HEADERS, *lead_rows(5)]),
    )


@pytest.fixture
def queued_job(
    organization: Organization,
    ada: User,
    ada_membership: Membership,
    django_capture_on_commit_callbacks: Any,
) -> ImportJob:
    """A large file queued for the worker (the DB task backend, as in production)."""
    job = _job(organization, ada)
    with (
        override_settings(KIZUNA_IMPORT_BACKGROUND_ROWS=2),
        django_capture_on_commit_callbacks(execute=True),
    ):
        services.start_import(job=job, by=ada, skip_bad_rows=False, allow_duplicates=False)
    job.refresh_from_db()
    assert job.status == ImportStatus.QUEUED
    assert job.task_id == str(DBTaskResult.objects.get().pk)
    return job


def _worker_dies_running(job: ImportJob, worker_id: str) -> TaskResultStatus:
    """A worker claims the job's task, starts importing, and is killed (no heartbeat)."""
    result = DBTaskResult.objects.get(pk=job.task_id)
    DBTaskResult.objects.filter(pk=result.pk).update(
        status=TaskResultStatus.RUNNING,
        worker_ids=[*result.worker_ids, worker_id],
        started_at=timezone.now() - timedelta(minutes=2),
    )
    ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.RUNNING, processed=3)
    [recovery] = recover_abandoned_tasks()
    return recovery.status


def test_an_import_whose_worker_dies_3_times_fails_and_stops_polling(
    ada_client: Client, queued_job: ImportJob
) -> None:
    detail = reverse("crm_imports:detail", args=[queued_job.pk])
    for attempt in (1, 2):
        assert _worker_dies_running(queued_job, f"dead-{attempt}") == TaskResultStatus.READY
        # Retried later: the page keeps polling.
        html = ada_client.get(detail, headers=HTMX).content.decode()
        assert POLLING in html
        assert ImportJob.objects.get(pk=queued_job.pk).status == ImportStatus.RUNNING

    assert _worker_dies_running(queued_job, "dead-3") == TaskResultStatus.FAILED
    html = ada_client.get(detail, headers=HTMX).content.decode()
    assert POLLING not in html
    assert '<strong id="import-status">Failed</strong>' in html
    message = (
        "The import was given up after 3 attempts: the background worker stopped each time "
        "(for example, it ran out of memory). Nothing was imported. Try again, or split the "
        "file into smaller ones."
    )
    assert f'<p class="form-errors" id="import-failure">{message}</p>' in html
    job = ImportJob.objects.get(pk=queued_job.pk)
    assert (job.status, job.failure, job.created_count) == (ImportStatus.FAILED, message, 0)
    assert job.finished_at is not None
    assert Lead.objects.count() == 0
    # The file is kept: it can be started again from its check.
    assert f'href="{reverse("crm_imports:preview", args=[job.pk])}"' in html


def test_the_failure_is_written_in_the_importers_language(
    ada_client: Client, ada: User, queued_job: ImportJob
) -> None:
    ada.language = "ja"
    ada.save(update_fields=["language"])
    for attempt in (1, 2, 3):
        _worker_dies_running(queued_job, f"dead-{attempt}")
    page = ada_client.get(reverse("crm_imports:detail", args=[queued_job.pk]))
    assert POLLING not in page.content.decode()
    queued_job.refresh_from_db()
    assert queued_job.failure == (
        "バックグラウンドのワーカーが毎回停止したため、3回試した後にインポートを中止しました"
        "（メモリ不足などが原因です）。何もインポートされていません。もう一度実行するか、"
        "ファイルを小さく分割してください。"
    )


def test_the_import_list_shows_the_job_failed_too(
    ada_client: Client, queued_job: ImportJob
) -> None:
    for attempt in (1, 2, 3):
        _worker_dies_running(queued_job, f"dead-{attempt}")
    page = ada_client.get(reverse("crm_imports:start"))
    assert [job.status for job in page.context["jobs"]] == [ImportStatus.FAILED]
    assert ImportJob.objects.get(pk=queued_job.pk).status == ImportStatus.FAILED


@override_settings(KIZUNA_IMPORT_BACKGROUND_ROWS=2)
def test_a_check_whose_task_raised_on_its_last_attempt_fails_with_a_clear_message(
    ada_client: Client,
    organization: Organization,
    ada: User,
    django_capture_on_commit_callbacks: Any,
) -> None:
    job = _job(organization, ada)
    with django_capture_on_commit_callbacks(execute=True):
        job = services.save_import_mapping(job=job, mapping=job.mapping)
    job.refresh_from_db()
    assert job.status == ImportStatus.CHECKING
    result = DBTaskResult.objects.get(pk=job.task_id)
    result.status = TaskResultStatus.RUNNING
    result.worker_ids = ["w1", "w2", "w3"]
    DBTaskResult.objects.filter(pk=result.pk).update(
        status=result.status, worker_ids=result.worker_ids
    )
    assert (
        finish_with_error(result, exception_class_path="builtins.MemoryError", traceback="")
        == TaskResultStatus.FAILED
    )
    html = ada_client.get(reverse("crm_imports:detail", args=[job.pk]), headers=HTMX)
    content = html.content.decode()
    assert POLLING not in content
    assert (
        "Checking the file failed in the background. Try again; if it keeps failing, ask an "
        "administrator to look at the worker&#x27;s log."
    ) in content
    assert ImportJob.objects.get(pk=job.pk).status == ImportStatus.FAILED


def test_a_job_finished_by_its_task_is_left_alone(
    ada_client: Client, queued_job: ImportJob
) -> None:
    from kizuna.crm.imports.tasks import run_import_task

    assert run_import_task.call(queued_job.pk) == 5
    DBTaskResult.objects.filter(pk=queued_job.task_id).update(status=TaskResultStatus.FAILED)
    assert services.fail_abandoned_imports(jobs=[ImportJob.objects.get(pk=queued_job.pk)]) == []
    job = ImportJob.objects.get(pk=queued_job.pk)
    assert (job.status, job.created_count, job.failure) == (ImportStatus.DONE, 5, "")


def test_other_organizations_get_404_and_change_nothing(
    charlie_client: Client, queued_job: ImportJob
) -> None:
    for attempt in (1, 2, 3):
        _worker_dies_running(queued_job, f"dead-{attempt}")
    response = charlie_client.get(reverse("crm_imports:detail", args=[queued_job.pk]))
    assert response.status_code == 404
    assert ImportJob.objects.get(pk=queued_job.pk).status == ImportStatus.RUNNING
