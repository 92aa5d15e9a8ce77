"""Background work of the CSV import."""

from __future__ import annotations

from django_tasks import task

from kizuna.crm.imports import services


@task()
def run_import_task(job_id: int) -> int:
    """Import a large file in the worker; returns how many records were created."""
    return services.run_import(job_id=job_id).created_count
