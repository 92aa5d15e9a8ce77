from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from kizuna.crm.access import MODULES, current_membership, signed_in_user
from kizuna.crm.forms import ListForm
from kizuna.crm.imports import services
from kizuna.crm.imports.access import get_import_job_for_member, import_jobs_for_member
from kizuna.crm.imports.checks import PROBLEMS_SHOWN, check_rows
from kizuna.crm.imports.exporting import csv_lines, export_queryset
from kizuna.crm.imports.forms import MappingForm, StartForm, UploadForm
from kizuna.crm.imports.models import ImportJob, ImportModule, ImportStatus
from kizuna.crm.imports.rows import MAX_UPLOAD_BYTES, ImportFileError, field_label, read_table
from kizuna.crm.imports.texts import in_readers_language


@login_required
def start(request: HttpRequest) -> HttpResponse:
    membership = current_membership(request)
    if request.method == "POST":
        form = UploadForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                job = services.create_import_job(
                    organization=membership.organization,
                    by=signed_in_user(request),
                    module=form.cleaned_data["module"],
                    filename=upload.name or "import.csv",
                    data=upload.read(MAX_UPLOAD_BYTES + 1),
                )
            except ImportFileError as error:
                form.add_error("file", str(error))
            else:
                return redirect("crm_imports:mapping", pk=job.pk)
    else:
        module = request.GET.get("module", ImportModule.LEADS)
        form = UploadForm(initial={"module": module})
    jobs = import_jobs_for_member(request)
    recent = list(jobs.select_related("created_by").order_by("-created_at")[:20])
    failed = services.fail_abandoned_imports(jobs=recent)
    for job in recent:
        if job.pk in failed:
            job.refresh_from_db()
    return render(
        request,
        "crm_imports/start.html",
        {"form": form, "jobs": recent},
    )


@login_required
def mapping(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_import_job_for_member(request, pk)
    if not job.is_editable:
        return redirect("crm_imports:detail", pk=job.pk)
    _headers, rows = read_table(job.content)
    samples = rows[0][1] if rows else []
    form = MappingForm(
        request.POST or None,
        module=job.module,
        headers=list(job.headers),
        samples=samples,
        mapping=job.mapping,
    )
    if request.method == "POST" and form.is_valid():
        job = services.save_import_mapping(job=job, mapping=form.mapping())
        if job.status == ImportStatus.CHECKING:
            return redirect("crm_imports:detail", pk=job.pk)
        return redirect("crm_imports:preview", pk=job.pk)
    return render(request, "crm_imports/mapping.html", {"job": job, "form": form})


@login_required
def preview(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_import_job_for_member(request, pk)
    if not job.is_editable:
        return redirect("crm_imports:detail", pk=job.pk)
    # Large files were checked by the worker; small ones are checked now.
    summary = job.check_summary or check_rows(job)
    return render(
        request,
        "crm_imports/preview.html",
        {
            "job": job,
            "summary": summary,
            "problems": _problems_for_display(job, summary["problems"]),
            "problems_hidden": summary["problems_total"] - len(summary["problems"]),
            "column_labels": [field_label(job.module, name) for name in summary["columns"]],
            "form": StartForm(),
            "background": job.row_count > services.background_threshold(),
        },
    )


def _problems_for_display(job: ImportJob, problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "row": problem["row"],
            "fields": [
                (field_label(job.module, name), in_readers_language(messages_))
                for name, messages_ in problem["fields"].items()
            ],
            "duplicate": in_readers_language(problem["duplicate"]),
        }
        for problem in problems
    ]


@require_POST
@login_required
def run(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_import_job_for_member(request, pk)
    if not job.is_editable:
        return redirect("crm_imports:detail", pk=job.pk)
    form = StartForm(request.POST)
    form.is_valid()  # two optional checkboxes: always valid
    job = services.start_import(
        job=job,
        by=signed_in_user(request),
        skip_bad_rows=form.cleaned_data["skip_bad_rows"],
        allow_duplicates=form.cleaned_data["allow_duplicates"],
    )
    if job.status == ImportStatus.DONE:
        messages.success(
            request,
            _("%(count)s records were imported.") % {"count": job.created_count},
        )
    return redirect("crm_imports:detail", pk=job.pk)


@require_POST
@login_required
def discard(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_import_job_for_member(request, pk)
    if services.discard_import(job=job):
        messages.success(
            request, _("The file %(filename)s was discarded.") % {"filename": job.filename}
        )
    return redirect("crm_imports:start")


@login_required
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_import_job_for_member(request, pk)
    if services.fail_abandoned_imports(jobs=[job]):
        job.refresh_from_db()  # failed: the progress part stops polling
    problems = _problems_for_display(job, job.problems[:PROBLEMS_SHOWN])
    context = {"job": job, "problems": problems, "can_retry": job.is_editable}
    if request.htmx:  # type: ignore[attr-defined]
        if job.status == ImportStatus.UPLOADED and job.check_summary:
            # The worker finished checking the file: on to its preview.
            return HttpResponseClientRedirect(reverse("crm_imports:preview", args=[job.pk]))
        return render(request, "crm_imports/detail.html#progress", context)
    return render(request, "crm_imports/detail.html", context)


@login_required
def export(request: HttpRequest, module: str) -> StreamingHttpResponse:
    if module not in MODULES:
        raise Http404
    organization = current_membership(request).organization
    # The list page's own form reads the filters, so the file holds what the list shows.
    query = ListForm(
        request.GET, module=module, organization=organization, user=signed_in_user(request)
    ).list_query()
    queryset = export_queryset(organization=organization, module=module, query=query)
    response = StreamingHttpResponse(
        csv_lines(queryset, module, get_language() or "en"),
        content_type="text/csv; charset=utf-8",
    )
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="{module}-{stamp}.csv"'
    return response
