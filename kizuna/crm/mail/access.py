"""Who may see and change what in CRM mail, always within the current organization."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _

from kizuna.crm.access import current_membership, get_organization_for_member
from kizuna.crm.mail.models import EmailTemplate, Module, SendBatch
from kizuna.crm.mail.rendering import RECORD_MODEL
from kizuna.crm.models import Contact, Lead, Organization

MAX_RECIPIENTS = 1000


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


class SelectionError(Exception):
    """A list selection the composer cannot take, with the reason for the user."""


def parse_ids(raw_ids: list[str]) -> list[int]:
    """Ids from repeated `ids` fields (the list's checkboxes) or comma-separated ones."""
    try:
        return list(
            dict.fromkeys(
                int(part) for value in raw_ids for part in value.split(",") if part.strip()
            )
        )
    except ValueError:
        raise Http404 from None


def requested_records(
    organization: Organization, module: str, ids: list[int]
) -> list[Lead | Contact]:
    """The records named by `ids`, in that order; 404 if any is not ours."""
    if not ids:
        raise SelectionError(_("Select at least one record."))
    if len(ids) > MAX_RECIPIENTS:
        raise SelectionError(
            _("Select at most %(max)d records for one email.") % {"max": MAX_RECIPIENTS}
        )
    model = RECORD_MODEL[module]
    found = {record.pk: record for record in model.objects.of(organization).filter(pk__in=ids)}
    if len(found) != len(ids):
        raise Http404
    return [found[pk] for pk in ids]
