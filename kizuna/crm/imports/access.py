"""Who may see an import: its creator, and the organization's administrators."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404

from kizuna.crm.access import current_membership
from kizuna.crm.imports.models import ImportJob


def import_jobs_for_member(request: HttpRequest) -> QuerySet[ImportJob]:
    """The imports of the current organization the member may see."""
    membership = current_membership(request)
    jobs = ImportJob.objects.of(membership.organization)
    if not membership.is_administrator:
        jobs = jobs.filter(created_by_id=membership.user_id)
    return jobs


def get_import_job_for_member(request: HttpRequest, pk: int) -> ImportJob:
    """The import in the current organization, or 404 (also for other members' imports)."""
    jobs = import_jobs_for_member(request).select_related("organization", "created_by")
    return get_object_or_404(jobs, pk=pk)
