"""Settings > Audit log: who changed what in the Survey account (administrators only)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse

from kizuna.lib import audit
from kizuna.survey.access import get_admin_membership
from kizuna.survey.audit.forms import AuditFilterForm
from kizuna.survey.audit.models import AuditEntry
from kizuna.survey.pages import render_page


@login_required
def audit_log(request: HttpRequest) -> HttpResponse:
    account = get_admin_membership(request).account
    form = AuditFilterForm(request.GET, account=account)
    entries = AuditEntry.objects.of(account).select_related("actor")
    context = audit.log_page(entries, form, request.GET)
    return render_page(
        request,
        "survey_audit/log.html",
        {"nav": "audit-log", **context},
        status=200 if form.is_valid() else 400,
    )
