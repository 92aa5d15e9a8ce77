"""Who may see and change what in CRM mail, always within the current organization."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404

from kizuna.crm.access import current_membership, get_organization_for_member
from kizuna.crm.mail.models import EmailTemplate, Module, SendBatch


def get_module(value: str | None) -> str:
    if value not in Module.values:
        raise Http404("Unknown module")
    return value


def get_template_for_member(request: HttpRequest, pk: int) -> EmailTemplate:
    organization = get_organization_for_member(request)
    return get_object_or_404(
        EmailTemplate.objects.of(organization).select_related("created_by"), pk=pk
    )


def can_change_template(request: HttpRequest, template: EmailTemplate) -> bool:
    """Administrators change any template; standard members the ones they created."""
    membership = current_membership(request)
    return membership.is_administrator or template.created_by_id == request.user.pk


def get_template_for_editor(request: HttpRequest, pk: int) -> EmailTemplate:
    template = get_template_for_member(request, pk)
    if not can_change_template(request, template):
        raise PermissionDenied
    return template


def get_batch_for_member(request: HttpRequest, pk: int) -> SendBatch:
    organization = get_organization_for_member(request)
    return get_object_or_404(
        SendBatch.objects.of(organization).select_related("sender", "template"), pk=pk
    )
