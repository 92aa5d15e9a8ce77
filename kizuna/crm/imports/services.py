"""Every write of the CSV import: the job row, the records, their timeline, the background task."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext, ngettext
from django_tasks import TaskResultStatus, default_task_backend
from django_tasks.base import Task
from django_tasks.exceptions import TaskResultDoesNotExist

from kizuna.crm.audit import services as audit
from kizuna.crm.audit.models import AuditAction
from kizuna.crm.imports.checks import summarize
from kizuna.crm.imports.models import EDITABLE, IN_PROGRESS, ImportJob, ImportStatus
from kizuna.crm.imports.rows import (
    MAX_UPLOAD_BYTES,
    ImportFileError,
    analyze,
    decode_upload,
    guess_mapping,
    read_table,
)
from kizuna.crm.imports.texts import in_every_language
from kizuna.crm.models import Activity, ActivityKind, Contact, Lead, Organization, model_for
from kizuna.identity.models import User
from kizuna.work.retry import WorkerDied

BATCH_SIZE = 1000
PROBLEMS_KEPT = 1000


def background_threshold() -> int:
    """Files with more rows than this are imported by the worker, with a progress bar."""
    return settings.KIZUNA_IMPORT_BACKGROUND_ROWS


def create_import_job(
    *, organization: Organization, by: User, module: str, filename: str, data: bytes
) -> ImportJob:
    """Store an uploaded file, decoded, with the column mapping guessed from its headers."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImportFileError(
            gettext("The file is larger than %(size)s MB.")
            % {"size": MAX_UPLOAD_BYTES // 1024 // 1024}
        )
    text, encoding = decode_upload(data)
    headers, rows = read_table(text)
    return ImportJob.objects.create(
        organization=organization,
        created_by=by,
        module=module,
        filename=filename[:255],
        encoding=encoding,
        content=text,
        headers=headers,
        row_count=len(rows),
        mapping=guess_mapping(headers, module),
    )


def save_import_mapping(*, job: ImportJob, mapping: dict[str, str]) -> ImportJob:
    """Keep the column mapping; a large file is then checked by the worker."""
    background = job.row_count > background_threshold()
    ImportJob.objects.filter(pk=job.pk).update(
        mapping=mapping,
        check_summary={},
        status=ImportStatus.CHECKING if background else ImportStatus.UPLOADED,
        processed=0,
        task_id="",
    )
    if background:
        from kizuna.crm.imports.tasks import check_import_task

        transaction.on_commit(lambda: _enqueue(check_import_task, job.pk))
    job.refresh_from_db()
    return job


def _importers_language(job: ImportJob) -> translation.override:
    """Messages stored on the job are read by the member who imports, in their language."""
    language = job.created_by.language if job.created_by else ""
    return translation.override(language or settings.LANGUAGE_CODE)


def _enqueue(task: Task[[int], Any], job_id: int) -> None:
    result = task.enqueue(job_id)
    ImportJob.objects.filter(pk=job_id).update(task_id=str(result.id))


def _failed_task(task_id: str) -> Any:
    """The task's result if it has failed for good (no retry left), else None."""
    if not default_task_backend.supports_get_result:
        return None
    try:
        result = default_task_backend.get_result(task_id)
    except TaskResultDoesNotExist:
        return None
    return result if result.status == TaskResultStatus.FAILED else None


def _failure(render: Callable[[], str]) -> dict[str, Any]:
    """The job's failure fields: in the importer's language (the active one) and in every one."""
    return {"failure": render(), "failure_texts": in_every_language(render)}


def _abandoned_message(job: ImportJob, result: Any) -> str:
    last_error = result.errors[-1].exception_class_path if result.errors else ""
    worker_died = last_error == f"{WorkerDied.__module__}.{WorkerDied.__qualname__}"
    attempts = {"attempts": len(result.worker_ids)}
    if job.status == ImportStatus.CHECKING:
        if worker_died:
            return (
                gettext(
                    "Checking the file was given up after %(attempts)d attempts: the background "
                    "worker stopped each time (for example, it ran out of memory). Try again, or "
                    "split the file into smaller ones."
                )
                % attempts
            )
        return gettext(
            "Checking the file failed in the background. Try again; if it keeps failing, ask "
            "an administrator to look at the worker's log."
        )
    if worker_died:
        return (
            gettext(
                "The import was given up after %(attempts)d attempts: the background worker "
                "stopped each time (for example, it ran out of memory). Nothing was imported. Try "
                "again, or split the file into smaller ones."
            )
            % attempts
        )
    return gettext(
        "The import failed in the background and nothing was imported. Try again; if it keeps "
        "failing, ask an administrator to look at the worker's log."
    )


def fail_abandoned_imports(*, jobs: Iterable[ImportJob]) -> list[int]:
    """Mark failed the jobs in progress whose background task has failed for good.

    The worker records a task's final failure only on the task's result (for example
    WorkerDied when its worker was killed on every attempt), so the job's pages ask.
    Returns the ids of the jobs marked failed.
    """
    failed = []
    for job in jobs:
        if not job.is_in_progress or not job.task_id:
            continue
        result = _failed_task(job.task_id)
        if result is None:
            continue
        with _importers_language(job):
            failure = _failure(partial(_abandoned_message, job, result))
        # Only while the job is still where that task left it.
        if ImportJob.objects.filter(pk=job.pk, task_id=job.task_id, status__in=IN_PROGRESS).update(
            status=ImportStatus.FAILED, finished_at=timezone.now(), **failure
        ):
            failed.append(job.pk)
    return failed


def check_import(*, job_id: int) -> ImportJob:
    """The worker's dry run of a large file: store what the preview page shows.

    It writes no record, so running it twice, or again after a worker died, is harmless.
    """
    job = ImportJob.objects.select_related("organization", "created_by").get(pk=job_id)
    if job.status != ImportStatus.CHECKING:
        return job

    def report(processed: int) -> None:
        ImportJob.objects.filter(pk=job.pk, status=ImportStatus.CHECKING).update(
            processed=processed
        )

    with _importers_language(job):
        analysis = analyze(
            organization=job.organization,
            module=job.module,
            text=job.content,
            mapping=job.mapping,
            on_progress=report,
        )
        summary = summarize(job, analysis)
    ImportJob.objects.filter(pk=job.pk, status=ImportStatus.CHECKING).update(
        status=ImportStatus.UPLOADED, check_summary=summary
    )
    job.refresh_from_db()
    return job


def discard_import(*, job: ImportJob) -> bool:
    """Drop an upload that will not be imported, and the personal data in its file."""
    discarded = ImportJob.objects.filter(pk=job.pk, status__in=EDITABLE, created_count=0).update(
        status=ImportStatus.DISCARDED, content="", finished_at=timezone.now()
    )
    job.refresh_from_db()
    return bool(discarded)


def start_import(
    *, job: ImportJob, by: User, skip_bad_rows: bool, allow_duplicates: bool
) -> ImportJob:
    """Queue the import; small files run now, large ones in the worker."""
    with transaction.atomic():
        # A job that failed on bad rows may be started again, for example to skip them.
        updated = ImportJob.objects.filter(pk=job.pk, status__in=EDITABLE, created_count=0).update(
            status=ImportStatus.QUEUED,
            failure="",
            failure_texts={},
            problems=[],
            skip_bad_rows=skip_bad_rows,
            allow_duplicates=allow_duplicates,
            processed=0,
            task_id="",
        )
        if updated:
            audit.record(
                organization=job.organization,
                actor=by,
                action=AuditAction.IMPORT_STARTED,
                target=job,
                data={"module": job.module, "rows": job.row_count},
            )
    if not updated:
        job.refresh_from_db()
        return job
    if job.row_count > background_threshold():
        from kizuna.crm.imports.tasks import run_import_task

        transaction.on_commit(lambda: _enqueue(run_import_task, job.pk))
        job.refresh_from_db()
        return job
    return run_import(job_id=job.pk)


def run_import(*, job_id: int, take_over: bool = False) -> ImportJob:
    """Validate again and create the records; all of them or none unless bad rows are skipped.

    Safe to run twice: only the run that moves the job from queued to running acts.
    `take_over` is for the worker's retry of an attempt whose worker died: the
    records are written in one transaction, so a dead attempt wrote none of them
    and its running job can be run again from the start.
    """
    claimable = [ImportStatus.QUEUED]
    if take_over:
        claimable += [ImportStatus.RUNNING, ImportStatus.SAVING]
    claimed = ImportJob.objects.filter(pk=job_id, status__in=claimable).update(
        status=ImportStatus.RUNNING, started_at=timezone.now(), processed=0
    )
    job = ImportJob.objects.select_related("organization", "created_by").get(pk=job_id)
    if not claimed:
        return job
    with _importers_language(job):
        try:
            _run_claimed_import(job)
        except Exception as error:
            reason = {"error": error}
            ImportJob.objects.filter(pk=job.pk).update(
                status=ImportStatus.FAILED,
                finished_at=timezone.now(),
                **_failure(
                    lambda: (
                        gettext("The import failed and nothing was imported: %(error)s") % reason
                    )
                ),
            )
            raise
    job.refresh_from_db()
    return job


def _run_claimed_import(job: ImportJob) -> None:
    def report(processed: int) -> None:
        ImportJob.objects.filter(pk=job.pk).update(processed=processed)

    analysis = analyze(
        organization=job.organization,
        module=job.module,
        text=job.content,
        mapping=job.mapping,
        on_progress=report,
    )
    problems = [
        problem.as_json()
        for problem in analysis.problems(allow_duplicates=job.allow_duplicates)[:PROBLEMS_KEPT]
    ]
    bad = analysis.bad_count(allow_duplicates=job.allow_duplicates)
    if bad and not job.skip_bad_rows:
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportStatus.FAILED,
            processed=analysis.total,
            problems=problems,
            finished_at=timezone.now(),
            **_failure(
                lambda: (
                    ngettext(
                        "%(count)s row has errors or is a duplicate, so nothing was imported. Fix "
                        "the file, or choose to skip the bad row.",
                        "%(count)s rows have errors or duplicates, so nothing was imported. Fix "
                        "the file, or choose to skip the bad rows.",
                        bad,
                    )
                    % {"count": bad}
                )
            ),
        )
        return
    rows = analysis.rows_to_create(allow_duplicates=job.allow_duplicates)
    ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.SAVING)
    with transaction.atomic():
        _create_records(job, rows)
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportStatus.DONE,
            processed=analysis.total,
            created_count=len(rows),
            skipped_count=bad,
            problems=problems,
            content="",
            finished_at=timezone.now(),
        )
        audit.record(
            organization=job.organization,
            actor=job.created_by,
            action=AuditAction.IMPORT_FINISHED,
            target=job,
            data={"module": job.module, "created": len(rows), "skipped": bad},
        )


def _create_records(job: ImportJob, rows: list[tuple[int, dict[str, Any]]]) -> None:
    model = model_for(job.module)
    now = timezone.now()
    by = job.created_by
    summary = gettext("Imported from %(filename)s") % {"filename": job.filename}
    for start in range(0, len(rows), BATCH_SIZE):
        batch = rows[start : start + BATCH_SIZE]
        records: list[Lead | Contact] = []
        for _number, values in batch:
            record = model(
                organization=job.organization,
                created_by=by,
                modified_by=by,
                created_at=now,
                modified_at=now,
                **values,
            )
            if "owner_id" not in values:
                record.owner = by
            records.append(record)
        created = model.objects.bulk_create(records)  # type: ignore[arg-type]
        link = "lead" if job.module == "leads" else "contact"
        Activity.objects.bulk_create(
            [
                Activity(
                    organization=job.organization,
                    kind=ActivityKind.IMPORTED,
                    summary=summary[:500],
                    data={"import_job": job.pk, "row": number},
                    actor=by,
                    created_at=now,
                    **{link: record},
                )
                for (number, _values), record in zip(batch, created, strict=True)
            ]
        )
