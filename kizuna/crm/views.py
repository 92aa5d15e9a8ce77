"""CRM core pages: dashboard, organizations, leads and contacts.

Settings and invitations are in settings_views.py.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from kizuna.crm import extensions, listing, services
from kizuna.crm.access import (
    DELETE_DENIED,
    current_membership,
    get_lead_for_member,
    get_organization_for_member,
    get_record_for_member,
    memberships_of,
    signed_in_user,
    switch_organization,
)
from kizuna.crm.forms import BulkForm, ListForm, OrganizationForm, form_class_for, member_users
from kizuna.crm.models import Activity, Contact, Lead, LeadSource, LeadStatus, model_for

SINGULAR = {"leads": "lead", "contacts": "contact"}
RECENT_ON_DASHBOARD = 8
# What a list page keeps in its paging and sorting links (the cursor changes).
LIST_PARAMETERS = ("q", "status", "owner", "source", "sort")


def url_for(module: str, action: str, *args: Any) -> str:
    """crm:lead-detail, crm:contact-list, ... for a module."""
    return reverse(f"crm:{SINGULAR[module]}-{action}", args=args)


@login_required
def home(request: HttpRequest) -> HttpResponse:
    if not memberships_of(request):
        return render(request, "crm/welcome.html", {"form": OrganizationForm()})
    membership = current_membership(request)
    organization = membership.organization
    leads = Lead.objects.of(organization)
    contacts = Contact.objects.of(organization)
    statuses = [
        (value, label, *listing.capped_count(leads.filter(status=value)))
        for value, label in LeadStatus.choices
    ]
    return render(
        request,
        "crm/home.html",
        {
            "organization": organization,
            "lead_count": listing.capped_count(leads),
            "contact_count": listing.capped_count(contacts),
            "my_lead_count": listing.capped_count(leads.filter(owner=signed_in_user(request))),
            "statuses": statuses,
            "recent_leads": leads.select_related("owner").order_by("-created_at", "-id")[
                :RECENT_ON_DASHBOARD
            ],
            "recent_contacts": contacts.select_related("owner").order_by("-created_at", "-id")[
                :RECENT_ON_DASHBOARD
            ],
        },
    )


@login_required
def organization_create(request: HttpRequest) -> HttpResponse:
    form = OrganizationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        organization = services.create_organization(
            name=form.cleaned_data["name"], by=signed_in_user(request)
        )
        switch_organization(request, organization.pk)
        messages.success(request, _("The organization is ready. You are its administrator."))
        return redirect("crm:home")
    return render(request, "crm/organization_form.html", {"form": form})


@require_POST
@login_required
def organization_switch(request: HttpRequest) -> HttpResponse:
    try:
        organization_id = int(request.POST.get("organization", ""))
    except ValueError:
        raise Http404 from None
    membership = switch_organization(request, organization_id)
    messages.success(
        request,
        _("You are now working in %(organization)s.")
        % {"organization": membership.organization.name},
    )
    # Records of the previous organization are 404 here: start from the dashboard.
    return redirect("crm:home")


def _list_context(
    request: HttpRequest, module: str, bulk_form: BulkForm | None = None
) -> dict[str, Any]:
    organization = get_organization_for_member(request)
    model = model_for(module)
    # One query for the owners of both forms' menus.
    members = list(member_users(organization))
    form = ListForm(
        request.GET,
        module=module,
        organization=organization,
        user=signed_in_user(request),
        members=members,
    )
    query = form.list_query()
    queryset = query.filter(model.objects.of(organization))
    page = listing.paginate(
        queryset.select_related("owner"),
        sort=query.sort,
        after=query.after,
        before=query.before,
        count_limit=query.count_limit,
    )
    kept = {key: request.GET[key] for key in LIST_PARAMETERS if request.GET.get(key)}
    selected = set(bulk_form.cleaned_data.get("ids", [])) if bulk_form is not None else set()
    return {
        "module": module,
        "form": form,
        "page": page,
        "rows": [(row, row.pk in selected) for row in page.rows],
        "status_labels": dict(LeadStatus.choices),
        "source_labels": dict(LeadSource.choices),
        "is_filtered": bool(query.search or query.statuses or query.owner or query.source),
        "query_string": urlencode(kept),
        "next_url": f"?{urlencode({**kept, 'after': page.next_cursor})}"
        if page.next_cursor
        else "",
        "previous_url": f"?{urlencode({**kept, 'before': page.previous_cursor})}"
        if page.previous_cursor
        else (f"?{urlencode(kept)}" if not page.is_first else ""),
        "first_url": f"?{urlencode(kept)}",
        "column_sorts": _column_sorts(kept, query.sort.key),
        "bulk_form": bulk_form
        or BulkForm(module=module, organization=organization, members=members),
        "bulk_extensions": extensions.bulk_actions(request, module),
    }


# Sortable columns: the sort a click asks for, ascending first, then the reverse.
COLUMN_SORTS = {
    "name": ("name", "-name"),
    "company": ("company", "-company"),
    "created": ("oldest", "recent"),
}


def _column_sorts(kept: dict[str, str], current: str) -> dict[str, dict[str, str]]:
    """For each sortable column: the link that sorts by it and its aria-sort state."""
    columns = {}
    for column, (ascending, descending) in COLUMN_SORTS.items():
        state = {ascending: "ascending", descending: "descending"}.get(current, "none")
        wanted = ascending if state != "ascending" else descending
        if column == "created" and state == "none":
            wanted = descending  # dates: newest first on the first click
        columns[column] = {"url": f"?{urlencode({**kept, 'sort': wanted})}", "state": state}
    return columns


@login_required
def record_list(request: HttpRequest, module: str) -> HttpResponse:
    return render(request, "crm/record_list.html", _list_context(request, module))


def _back_to_list(request: HttpRequest, module: str) -> HttpResponseRedirect:
    query = request.GET.urlencode()
    return redirect(f"{url_for(module, 'list')}?{query}" if query else url_for(module, "list"))


@require_POST
@login_required
def record_bulk(request: HttpRequest, module: str) -> HttpResponse:
    """The list's bulk actions; the list's query string rides along to come back to it."""
    organization = get_organization_for_member(request)
    form = BulkForm(request.POST, module=module, organization=organization)
    if not form.is_valid():
        context = _list_context(request, module, bulk_form=form)
        return render(request, "crm/record_list.html", context, status=400)
    ids = list(
        services.records_of(organization, module, form.cleaned_data["ids"]).values_list(
            "pk", flat=True
        )
    )
    if not ids:
        # Only ids of other organizations (or deleted since): as for one record, 404.
        raise Http404
    action = form.cleaned_data["action"]
    if action == "owner":
        count = services.change_owner(
            organization=organization,
            module=module,
            ids=ids,
            owner=form.new_owner(),
            by=signed_in_user(request),
        )
        messages.success(
            request,
            ngettext(
                "The owner of %(count)d record was changed.",
                "The owner of %(count)d records was changed.",
                count,
            )
            % {"count": count},
        )
    elif action == "status":
        count = services.change_status(
            organization=organization,
            ids=ids,
            status=form.cleaned_data["status"],
            by=signed_in_user(request),
        )
        messages.success(
            request,
            ngettext(
                "The status of %(count)d lead was changed.",
                "The status of %(count)d leads was changed.",
                count,
            )
            % {"count": count},
        )
    elif action == "delete":
        return _bulk_delete(request, module, form, ids)
    return _back_to_list(request, module)


def _bulk_delete(request: HttpRequest, module: str, form: BulkForm, ids: list[int]) -> HttpResponse:
    """Delete the selected records the member may delete (see Membership.may_delete)."""
    membership = current_membership(request)
    organization = membership.organization
    allowed = membership.deletable(services.records_of(organization, module, ids))
    records = list(allowed.order_by("family_name", "given_name", "id"))
    left = len(ids) - len(records)
    if not records:
        form.add_error(None, DELETE_DENIED)
        context = _list_context(request, module, bulk_form=form)
        return render(request, "crm/record_list.html", context, status=403)
    if request.POST.get("confirm") != "yes":
        return render(
            request,
            "crm/bulk_confirm_delete.html",
            {
                "module": module,
                "records": records,
                "left": left,
                # All of the selection: the confirmed delete counts again what is left.
                "ids": ",".join(map(str, ids)),
                "query_string": request.GET.urlencode(),
            },
        )
    count = services.delete_records(
        organization=organization,
        module=module,
        ids=[record.pk for record in records],
        by=signed_in_user(request),
    )
    messages.success(
        request,
        ngettext("%(count)d record was deleted.", "%(count)d records were deleted.", count)
        % {"count": count},
    )
    if left:
        messages.warning(request, _left_message(left))
    return _back_to_list(request, module)


def _left_message(left: int) -> str:
    return ngettext(
        "%(count)d selected record was left: only administrators and its owner can delete it.",
        "%(count)d selected records were left: only administrators and their owners can delete "
        "them.",
        left,
    ) % {"count": left}


def _timeline(record: Lead | Contact) -> list[Activity]:
    activities = Activity.objects.select_related("actor")
    if isinstance(record, Lead):
        activities = activities.filter(lead=record)
    else:
        activities = activities.filter(contact=record)
    return list(activities.order_by("-created_at", "-id")[:200])


@login_required
def record_detail(request: HttpRequest, module: str, pk: int) -> HttpResponse:
    record = get_record_for_member(request, module, pk)
    return render(
        request,
        "crm/record_detail.html",
        {
            "module": module,
            "record": record,
            "timeline": _timeline(record),
            "source_leads": (
                record.source_leads.order_by("-converted_at") if isinstance(record, Contact) else []
            ),
            "extension_actions": extensions.detail_actions(request, record),
            "extension_panels": extensions.detail_panels(request, record),
            "may_delete": current_membership(request).may_delete(record),
        },
    )


@login_required
def record_create(request: HttpRequest, module: str) -> HttpResponse:
    organization = get_organization_for_member(request)
    form_class = form_class_for(module)
    form = form_class(
        request.POST or None, organization=organization, initial={"owner": request.user.pk}
    )
    if request.method == "POST" and form.is_valid():
        create = services.create_lead if module == "leads" else services.create_contact
        record = create(
            organization=organization, by=signed_in_user(request), values=form.record_values()
        )
        messages.success(request, _("%(name)s was added.") % {"name": record.display_name()})
        if "save_and_new" in request.POST:
            return redirect(url_for(module, "create"))
        return redirect(url_for(module, "detail", record.pk))
    return render(request, "crm/record_form.html", {"module": module, "form": form})


@login_required
def record_edit(request: HttpRequest, module: str, pk: int) -> HttpResponse:
    record = get_record_for_member(request, module, pk)
    organization = get_organization_for_member(request)
    form = form_class_for(module)(request.POST or None, instance=record, organization=organization)
    if request.method == "POST" and form.is_valid():
        try:
            changed = services.update_record(
                record=record, by=signed_in_user(request), values=form.record_values()
            )
        except (Lead.DoesNotExist, Contact.DoesNotExist):
            raise Http404 from None  # deleted by someone else since it was read above
        if changed:
            messages.success(request, _("Your changes were saved."))
        else:
            messages.info(request, _("Nothing was changed."))
        return redirect(url_for(module, "detail", record.pk))
    return render(
        request, "crm/record_form.html", {"module": module, "form": form, "record": record}
    )


@login_required
def record_delete(request: HttpRequest, module: str, pk: int) -> HttpResponse:
    record = get_record_for_member(request, module, pk)
    if not current_membership(request).may_delete(record):
        return render(
            request,
            "crm/record_delete_denied.html",
            {"module": module, "record": record, "message": DELETE_DENIED},
            status=403,
        )
    if request.method == "POST":
        services.delete_records(
            organization=get_organization_for_member(request),
            module=module,
            ids=[record.pk],
            by=signed_in_user(request),
        )
        messages.success(request, _("%(name)s was deleted.") % {"name": record.display_name()})
        return redirect(url_for(module, "list"))
    return render(request, "crm/record_confirm_delete.html", {"module": module, "record": record})


@login_required
def lead_convert(request: HttpRequest, pk: int) -> HttpResponse:
    lead = get_lead_for_member(request, pk)
    if lead.status == LeadStatus.CONVERTED:
        messages.info(request, _("This lead has already been converted."))
        return redirect("crm:lead-detail", lead.pk)
    if request.method == "POST":
        try:
            contact = services.convert_lead(lead=lead, by=signed_in_user(request))
        except services.ConversionError as error:
            messages.error(request, str(error))
            return redirect("crm:lead-detail", lead.pk)
        messages.success(
            request,
            _("%(name)s is now a contact, with the lead's history.")
            % {"name": contact.display_name()},
        )
        return redirect("crm:contact-detail", contact.pk)
    return render(request, "crm/lead_convert.html", {"module": "leads", "record": lead})
