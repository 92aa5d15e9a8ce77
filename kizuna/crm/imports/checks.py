"""The dry run of an import as the preview page shows it, storable as JSON.

Small files are checked while the preview page loads; large ones by the worker,
which stores this summary on the job for the page to show.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext

from kizuna.crm.imports.models import ImportJob
from kizuna.crm.imports.rows import Analysis, analyze
from kizuna.crm.models import LeadSource, LeadStatus, Membership

PROBLEMS_SHOWN = 200
SAMPLE_ROWS = 5


def check_rows(job: ImportJob) -> dict[str, Any]:
    """Check every row of the job's file now and summarize the result."""
    return summarize(
        job,
        analyze(
            organization=job.organization, module=job.module, text=job.content, mapping=job.mapping
        ),
    )


def summarize(job: ImportJob, analysis: Analysis) -> dict[str, Any]:
    columns = [name for _index, name in sorted((int(i), n) for i, n in job.mapping.items())]
    owners = dict(
        Membership.objects.filter(organization=job.organization).values_list(
            "user_id", "user__email"
        )
    )
    problems = analysis.problems()
    return {
        "total": analysis.total,
        "valid": len(analysis.valid),
        "errors": len(analysis.errors),
        "duplicates": len(analysis.duplicates),
        "problems": [problem.as_json() for problem in problems[:PROBLEMS_SHOWN]],
        "problems_total": len(problems),
        "columns": columns,
        "sample": [
            [number, [_display(name, values, owners) for name in columns]]
            for number, values in analysis.valid[:SAMPLE_ROWS]
        ],
    }


def _display(name: str, values: dict[str, Any], owners: dict[int, str]) -> str:
    if name == "owner":
        return owners.get(values.get("owner_id", 0), "")
    value = values.get(name, "")
    if name == "status" and value:
        return str(LeadStatus(value).label)
    if name == "lead_source" and value:
        return str(LeadSource(value).label)
    if name == "email_opt_out":
        return gettext("Yes") if value else gettext("No")
    return str(value)
