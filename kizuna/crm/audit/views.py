"""Settings > Audit log: who changed what in the organization (administrators only)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from kizuna.crm.access import get_organization_for_admin
from kizuna.crm.audit.forms import AuditFilterForm
from kizuna.crm.audit.models import AuditEntry
from kizuna.lib import audit


@login_required
def audit_log(request: HttpRequest) -> HttpResponse:
    organization = get_organization_for_admin(request)
    form = AuditFilterForm(request.GET, organization=organization)
    entries = AuditEntry.objects.of(organization).select_related("actor")
    context = audit.log_page(entries, form, request.GET)
    return render(
        request,
        "crm_audit/log.html",
        {"organization": organization, **context},
        status=200 if form.is_valid() else 400,
    )
