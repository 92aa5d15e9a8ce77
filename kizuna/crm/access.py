"""Who may see what in the CRM: every lookup is scoped to the current organization.

An id from another organization is a 404; a standard member on an administrator
page is a 403. The current organization is kept in the session and switched from
the header.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _

from kizuna.crm.models import Contact, Lead, MemberInvitation, Membership, Organization
from kizuna.crm.services import hash_token
from kizuna.identity.models import User

SESSION_KEY = "crm_organization_id"
MODULES = ("leads", "contacts")


def signed_in_user(request: HttpRequest) -> User:
    """The user of a view behind login_required."""
    assert isinstance(request.user, User)
    return request.user


def memberships_of(request: HttpRequest) -> list[Membership]:
    """The signed-in user's active memberships, by organization name.

    Read once per request: current_membership() and the layout's organization switcher
    both need them on every page. switch_organization() reads them again.
    """
    cached = getattr(request, "_crm_memberships", None)
    if cached is not None:
        return cached
    memberships: list[Membership] = []
    if request.user.is_authenticated:
        memberships = list(
            Membership.objects.filter(user=request.user, is_active=True)
            .select_related("organization")
            .order_by("organization__name", "organization_id")
        )
    request._crm_memberships = memberships  # type: ignore[attr-defined]
    return memberships


def current_membership(request: HttpRequest) -> Membership:
    """The signed-in user's active membership of the current organization, or 404."""
    cached = getattr(request, "_crm_membership", None)
    if cached is not None:
        return cached
    memberships = memberships_of(request)
    if not memberships:
        raise Http404("No organization")
    wanted = request.session.get(SESSION_KEY)
    membership = next((m for m in memberships if m.organization_id == wanted), memberships[0])
    if wanted != membership.organization_id:  # write the session only when it changes
        request.session[SESSION_KEY] = membership.organization_id
    request._crm_membership = membership  # type: ignore[attr-defined]
    return membership


def switch_organization(request: HttpRequest, organization_id: int) -> Membership:
    """Make `organization_id` the current organization (one the user has just joined or
    created in this request too), or 404."""
    request._crm_memberships = None  # type: ignore[attr-defined]
    membership = next(
        (m for m in memberships_of(request) if m.organization_id == organization_id), None
    )
    if membership is None:
        raise Http404("No such organization")
    request.session[SESSION_KEY] = organization_id
    request._crm_membership = membership  # type: ignore[attr-defined]
    return membership


def get_organization_for_member(request: HttpRequest) -> Organization:
    return current_membership(request).organization


def get_organization_for_admin(request: HttpRequest) -> Organization:
    membership = current_membership(request)
    if not membership.is_administrator:
        raise PermissionDenied
    return membership.organization


def get_lead_for_member(request: HttpRequest, pk: int) -> Lead:
    organization = get_organization_for_member(request)
    return get_object_or_404(Lead.objects.of(organization), pk=pk)


def get_contact_for_member(request: HttpRequest, pk: int) -> Contact:
    organization = get_organization_for_member(request)
    return get_object_or_404(Contact.objects.of(organization), pk=pk)


def get_record_for_member(request: HttpRequest, module: str, pk: int) -> Lead | Contact:
    if module == "leads":
        return get_lead_for_member(request, pk)
    if module == "contacts":
        return get_contact_for_member(request, pk)
    raise Http404


# Why a delete was refused (Membership.may_delete holds the rule), on the pages and in the API.
DELETE_DENIED = _("Only administrators and the record's owner can delete it.")


def get_membership_for_admin(request: HttpRequest, pk: int) -> Membership:
    """A membership (active or not) of the current organization, for its administrators."""
    organization = get_organization_for_admin(request)
    memberships = Membership.objects.of(organization).select_related("user", "organization")
    return get_object_or_404(memberships, pk=pk)


def get_invitation_for_admin(request: HttpRequest, pk: int) -> MemberInvitation:
    organization = get_organization_for_admin(request)
    return get_object_or_404(MemberInvitation.objects.of(organization), pk=pk)


def find_invitation(token: str) -> MemberInvitation | None:
    """The invitation a link's token stands for (any state), or None."""
    return (
        MemberInvitation.objects.select_related("organization", "invited_by")
        .filter(token_hash=hash_token(token))
        .first()
    )
