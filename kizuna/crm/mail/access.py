"""Who may see and change what in CRM mail, always within the current organization."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, QueryDict
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _

from kizuna.crm.access import current_membership, get_organization_for_member, signed_in_user
from kizuna.crm.mail.models import EmailTemplate, Module, SendBatch
from kizuna.crm.mail.rendering import RECORD_MODEL
from kizuna.crm.models import Contact, Lead, Organization

# One send may reach this many records (a list's selection, or all that match its filters);
# their messages are prepared in the background, PREPARE_PART_SIZE at a time.
MAX_RECIPIENTS = 10_000
# The composer lists this many of the recipients and counts the others.
LISTED_RECIPIENTS = 100


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


def selected_records(
    request: HttpRequest, organization: Organization, module: str, source: QueryDict
) -> list[Lead | Contact]:
    """The recipients a composer was opened for: `ids` (a record's page, a list's ticked
    rows), or with `match` every record the list's filters match (its query string), up
    to MAX_RECIPIENTS. SelectionError when there are none or too many; 404 if not ours."""
    if "match" not in source:
        return requested_records(organization, module, parse_ids(source.getlist("ids")))
    from kizuna.crm.forms import ListForm

    form = ListForm(
        QueryDict(source.get("match") or ""),
        module=module,
        organization=organization,
        user=signed_in_user(request),
    )
    queryset = form.list_query().filter(RECORD_MODEL[module].objects.of(organization))
    records = list(queryset.order_by("pk")[: MAX_RECIPIENTS + 1])
    if not records:
        raise SelectionError(_("Select at least one record."))
    if len(records) > MAX_RECIPIENTS:
        raise SelectionError(
            _("Select at most %(max)d records for one email.") % {"max": MAX_RECIPIENTS}
        )
    return records


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


def recipients_context(records: Sequence[Lead | Contact], language: str) -> dict[str, Any]:
    """What the composer shows of the recipients: the first LISTED_RECIPIENTS of them with
    why each is skipped (if so), how many more there are, how many get the message."""
    from kizuna.crm.mail.services import skip_reason

    reasons = [skip_reason(record) for record in records]
    return {
        "recipients": [
            {"record": record, "name": record.display_name(language), "skip": reason}
            for record, reason in zip(records[:LISTED_RECIPIENTS], reasons, strict=False)
        ],
        "more_recipients": max(0, len(records) - LISTED_RECIPIENTS),
        "sendable": sum(1 for reason in reasons if not reason),
        "ids": ",".join(str(record.pk) for record in records),
    }
