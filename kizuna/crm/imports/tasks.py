"""Background work of the CSV import."""

from __future__ import annotations

from django_tasks import task

from kizuna.crm.imports import services
from kizuna.work.retry import retrying


# A worker killed mid-import leaves the job running with nothing written; the
# worker's recovery runs the task again, which takes the job over.
@retrying(max_attempts=3, base_seconds=5, max_seconds=60)
@task()
def run_import_task(job_id: int) -> int:
    """Import a large file in the worker; returns how many records were created."""
    return services.run_import(job_id=job_id, take_over=True).created_count


@retrying(max_attempts=3, base_seconds=5, max_seconds=60)
@task()
def check_import_task(job_id: int) -> str:
    """Check a large file in the worker (a dry run: nothing is written but the summary)."""
    return services.check_import(job_id=job_id).status
