"""The CRM REST API v1: leads and contacts of the token's organization.

No `from __future__ import annotations` here: django-ninja reads the route
signatures at import time.
"""

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from ninja import NinjaAPI, Query, Status

from kizuna.crm import listing, services
from kizuna.crm.access import DELETE_DENIED
from kizuna.crm.api.auth import TokenAuth
from kizuna.crm.api.schemas import (
    ContactIn,
    ContactOut,
    ContactPage,
    ContactPatch,
    LeadIn,
    LeadOut,
    LeadPage,
    LeadPatch,
)
from kizuna.crm.forms import form_class_for
from kizuna.crm.models import Contact, Lead, LeadSource, LeadStatus, Membership, model_for
from kizuna.lib import api_errors
from kizuna.lib.api_errors import ErrorOut

MAX_LIMIT = 100

DESCRIPTION = """
Leads and contacts of one organization of Kizuna CRM.

**Authentication**: a personal API token, created on the API tokens page
(`/crm/api-tokens/`) and sent as `Authorization: Bearer <token>`. A token acts as its
user in the organization it was created for, with that user's role; it stops working
when it is revoked or when the user stops being an active member.

**Roles**: every member (administrator or standard user) can list, read, create and
update the organization's leads and contacts. Deleting is allowed to administrators
and to the record's owner.

**Errors** are JSON, the same in every Kizuna API:
`{"error": {"code": ..., "message": ..., "fields": {...}}}`. `code` is one of the codes
listed in the ErrorBody schema; `fields` maps request fields to messages for `invalid`
(422). Ids of other organizations answer 404 `not_found`.

**Pagination**: lists are ordered by `sort` and cut by an opaque `cursor`; follow
`next` until it is null.
"""

api = NinjaAPI(
    title="Kizuna CRM API",
    version="1.0.0",
    description=DESCRIPTION,
    urls_namespace="crm:crm_api_v1",
    auth=TokenAuth(),
)

ERRORS: dict[int, Any] = {code: ErrorOut for code in (400, 401, 403, 404, 413, 422)}


api_errors.install(
    api,
    missing_credentials=gettext_lazy("Send an API token: Authorization: Bearer <token>."),
    not_found=gettext_lazy("There is no such record in this organization."),
    authenticate_header="Bearer",
)


def _membership(request: HttpRequest) -> Membership:
    membership = request.auth  # type: ignore[attr-defined]
    assert isinstance(membership, Membership)
    return membership


def _record(request: HttpRequest, module: str, pk: int) -> Lead | Contact:
    records = model_for(module).objects.select_related("owner")
    try:
        return records.get(organization=_membership(request).organization, pk=pk)
    except (Lead.DoesNotExist, Contact.DoesNotExist):
        raise Http404 from None


def _out(record: Lead | Contact) -> dict[str, Any]:
    data = {
        name: getattr(record, name)
        for name in (
            "id", "family_name", "given_name", "company", "title", "email", "phone",
            "lead_source", "owner_id", "postal_code", "region", "city", "street", "country",
            "description", "email_opt_out", "created_at", "modified_at",
        )
    }  # fmt: skip
    data["display_name"] = record.display_name()
    data["owner_email"] = record.owner.email if record.owner else None
    if isinstance(record, Lead):
        data["status"] = record.status
        data["converted_contact_id"] = record.converted_contact_id
    else:
        data["department"] = record.department
    return data


def _validated_values(
    module: str, membership: Membership, sent: dict[str, Any], record: Lead | Contact | None
) -> dict[str, Any]:
    """Run the record form's rules on the record's values with `sent` applied."""
    form_class = form_class_for(module)
    names = list(form_class.Meta.fields)
    data: dict[str, Any] = {}
    if record is not None:
        for name in names:
            data[name] = record.owner_id if name == "owner" else getattr(record, name)
    for key, value in sent.items():
        data["owner" if key == "owner_id" else key] = value
    data = {name: ("" if value is None else value) for name, value in data.items()}
    # The form writes the values onto `record`; update_record() reads the row again.
    form = form_class(data=data, instance=record, organization=membership.organization)
    if not form.is_valid():
        fields: dict[str, list[str]] = {}
        for name, errors in form.errors.get_json_data().items():
            key = {"owner": "owner_id", "__all__": api_errors.NON_FIELD_ERRORS}.get(name, name)
            fields[key] = [str(error["message"]) for error in errors]
        raise api_errors.invalid(fields)
    changed = {"owner" if key == "owner_id" else key for key in sent}
    return {name: value for name, value in form.record_values().items() if name in changed}


def _page(
    request: HttpRequest,
    module: str,
    *,
    q: str,
    statuses: list[LeadStatus],
    owner: str,
    source: str,
    email: str,
    sort: str,
    cursor: str,
    limit: int,
) -> dict[str, Any]:
    membership = _membership(request)
    problems: dict[str, list[str]] = {}
    if owner == "me":
        owner = str(membership.user_id)
    elif owner not in ("", "none") and not owner.isdigit():
        problems["owner"] = [_("Use a user id, “me” or “none”.")]
    if source not in ("", "none") and source not in LeadSource.values:
        problems["source"] = [_("Not a lead source.")]
    if sort not in listing.SORTS:
        problems["sort"] = [_("Use one of: %(values)s.") % {"values": ", ".join(listing.SORTS)}]
    elif cursor and listing.decode_cursor(cursor, listing.SORTS[sort]) is None:
        problems["cursor"] = [_("Not a cursor of this list; start again without it.")]
    if problems:
        raise api_errors.invalid(problems)
    query = listing.ListQuery(
        search=q,
        statuses=tuple(statuses),
        owner=owner,
        source=source,
        sort=listing.SORTS[sort],
    )
    records = model_for(module).objects.of(membership.organization)
    queryset = query.filter(records.select_related("owner"))
    if email:
        queryset = queryset.filter(email__iexact=email)
    page = listing.paginate(queryset, sort=query.sort, after=cursor, page_size=limit)
    next_url = None
    if page.next_cursor:
        params = request.GET.copy()
        params["cursor"] = page.next_cursor
        next_url = request.build_absolute_uri(f"{request.path}?{params.urlencode()}")
    return {"items": [_out(record) for record in page.rows], "next": next_url}


def _create(request: HttpRequest, module: str, sent: dict[str, Any]) -> dict[str, Any]:
    membership = _membership(request)
    values = _validated_values(module, membership, sent, None)
    create = services.create_lead if module == "leads" else services.create_contact
    record = create(organization=membership.organization, by=membership.user, values=values)
    return _out(record)


def _update(request: HttpRequest, module: str, pk: int, sent: dict[str, Any]) -> dict[str, Any]:
    """Change only the fields sent."""
    membership = _membership(request)
    record = _record(request, module, pk)
    values = _validated_values(module, membership, sent, record)
    try:
        services.update_record(record=record, by=membership.user, values=values)
    except (Lead.DoesNotExist, Contact.DoesNotExist):
        raise Http404 from None  # deleted by someone else since it was read above
    return _out(_record(request, module, pk))


def _delete(request: HttpRequest, module: str, pk: int) -> HttpResponse:
    membership = _membership(request)
    record = _record(request, module, pk)
    if not membership.may_delete(record):
        raise PermissionDenied(DELETE_DENIED)
    services.delete_records(
        organization=membership.organization, module=module, ids=[record.pk], by=membership.user
    )
    return HttpResponse(status=204)


# Leads

LIST_HELP = (
    "Filters: `q` searches names, company and email (every word must match); `status` "
    "(leads, repeatable); `owner` (user id, `me` or `none`); `source` (a lead source or "
    "`none`); `email` (exact, any case). `sort`: recent, oldest, name, -name, company, "
    "-company. `limit`: 1-100 (default 50)."
)


@api.get(
    "/leads", response={200: LeadPage, **ERRORS}, operation_id="list_leads", tags=["leads"],
    description=LIST_HELP,
)  # fmt: skip
def list_leads(
    request: HttpRequest,
    q: str = "",
    status: list[LeadStatus] = Query([]),  # noqa: B008 - ninja's way to declare a query list
    owner: str = "",
    source: str = "",
    email: str = "",
    sort: str = listing.DEFAULT_SORT,
    cursor: str = "",
    limit: int = Query(listing.PAGE_SIZE, ge=1, le=MAX_LIMIT),
) -> dict[str, Any]:
    return _page(
        request, "leads", q=q, statuses=status, owner=owner, source=source, email=email,
        sort=sort, cursor=cursor, limit=limit,
    )  # fmt: skip


@api.post("/leads", response={201: LeadOut, **ERRORS}, operation_id="create_lead", tags=["leads"])
def create_lead(request: HttpRequest, payload: LeadIn) -> Status[dict[str, Any]]:
    return Status(201, _create(request, "leads", payload.dict()))


@api.get(
    "/leads/{lead_id}", response={200: LeadOut, **ERRORS}, operation_id="get_lead",
    tags=["leads"],
)  # fmt: skip
def get_lead(request: HttpRequest, lead_id: int) -> dict[str, Any]:
    return _out(_record(request, "leads", lead_id))


@api.patch(
    "/leads/{lead_id}", response={200: LeadOut, **ERRORS}, operation_id="update_lead",
    tags=["leads"], description="Changes only the fields sent.",
)  # fmt: skip
def update_lead(request: HttpRequest, lead_id: int, payload: LeadPatch) -> dict[str, Any]:
    return _update(request, "leads", lead_id, payload.dict(exclude_unset=True))


@api.delete(
    "/leads/{lead_id}", response={204: None, **ERRORS}, operation_id="delete_lead",
    tags=["leads"], description="Administrators, and the lead's owner, may delete a lead.",
)  # fmt: skip
def delete_lead(request: HttpRequest, lead_id: int) -> HttpResponse:
    return _delete(request, "leads", lead_id)


# Contacts


@api.get(
    "/contacts", response={200: ContactPage, **ERRORS}, operation_id="list_contacts",
    tags=["contacts"], description=LIST_HELP,
)  # fmt: skip
def list_contacts(
    request: HttpRequest,
    q: str = "",
    owner: str = "",
    source: str = "",
    email: str = "",
    sort: str = listing.DEFAULT_SORT,
    cursor: str = "",
    limit: int = Query(listing.PAGE_SIZE, ge=1, le=MAX_LIMIT),
) -> dict[str, Any]:
    return _page(
        request, "contacts", q=q, statuses=[], owner=owner, source=source, email=email,
        sort=sort, cursor=cursor, limit=limit,
    )  # fmt: skip


@api.post(
    "/contacts", response={201: ContactOut, **ERRORS}, operation_id="create_contact",
    tags=["contacts"],
)  # fmt: skip
def create_contact(request: HttpRequest, payload: ContactIn) -> Status[dict[str, Any]]:
    return Status(201, _create(request, "contacts", payload.dict()))


@api.get(
    "/contacts/{contact_id}", response={200: ContactOut, **ERRORS}, operation_id="get_contact",
    tags=["contacts"],
)  # fmt: skip
def get_contact(request: HttpRequest, contact_id: int) -> dict[str, Any]:
    return _out(_record(request, "contacts", contact_id))


@api.patch(
    "/contacts/{contact_id}", response={200: ContactOut, **ERRORS},
    operation_id="update_contact", tags=["contacts"], description="Changes only the fields sent.",
)  # fmt: skip
def update_contact(request: HttpRequest, contact_id: int, payload: ContactPatch) -> dict[str, Any]:
    return _update(request, "contacts", contact_id, payload.dict(exclude_unset=True))


@api.delete(
    "/contacts/{contact_id}", response={204: None, **ERRORS}, operation_id="delete_contact",
    tags=["contacts"],
    description="Administrators, and the contact's owner, may delete a contact.",
)  # fmt: skip
def delete_contact(request: HttpRequest, contact_id: int) -> HttpResponse:
    return _delete(request, "contacts", contact_id)
