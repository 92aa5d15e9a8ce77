"""Settings > Audit log: who changed what in the Survey account (administrators only)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.utils.http import urlencode

from kizuna.lib import cursors
from kizuna.survey.access import get_admin_member
from kizuna.survey.audit.forms import AuditFilterForm
from kizuna.survey.audit.models import AuditEntry
from kizuna.survey.pages import render_page

ENTRIES_PER_PAGE = 50


@login_required
def audit_log(request: HttpRequest) -> HttpResponse:
    account = get_admin_member(request).account
    form = AuditFilterForm(request.GET, account=account)
    entries = AuditEntry.objects.filter(account=account).select_related("actor")
    if not form.is_valid():
        entries = entries.none()
    else:
        if form.cleaned_data["action"]:
            entries = entries.filter(action=form.cleaned_data["action"])
        if form.cleaned_data["person"] is not None:
            entries = entries.filter(actor=form.cleaned_data["person"])
    page = cursors.newest_first(
        entries, before=request.GET.get("before", ""), size=ENTRIES_PER_PAGE
    )
    filters = {name: request.GET[name] for name in form.fields if request.GET.get(name)}
    return render_page(
        request,
        "survey_audit/log.html",
        {
            "nav": "audit-log",
            "form": form,
            "entries": page.rows,
            "is_filtered": bool(filters),
            "is_first_page": page.is_first,
            "filter_query": urlencode(filters),
            "older_query": (
                urlencode({**filters, "before": page.older_cursor}) if page.older_cursor else ""
            ),
        },
        status=200 if form.is_valid() else 400,
    )
