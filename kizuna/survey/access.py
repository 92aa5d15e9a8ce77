"""Who may see what in the Survey service: every lookup is scoped to the current account.

An id from another account is a 404; a plain member on an administrator page is
a 403. The current account is kept in the session. The twin of kizuna/crm/access.py:
the same names for the same roles, and a fix in one goes into the other.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404
from django.utils import timezone

from kizuna.identity.models import User
from kizuna.survey.models import (
    AccountMember,
    MemberInvitation,
    Portal,
    Question,
    Section,
    Survey,
)

SESSION_KEY = "survey_account_id"


def signed_in_user(request: HttpRequest) -> User:
    """The user of a view behind login_required."""
    assert isinstance(request.user, User)
    return request.user


def memberships_of(request: HttpRequest) -> list[AccountMember]:
    """The signed-in user's memberships, by account name.

    Read once per request: current_membership() and the layout's account switcher both
    need them on every page. switch_account() reads them again.
    """
    cached = getattr(request, "_survey_memberships", None)
    if cached is not None:
        return cached
    memberships: list[AccountMember] = []
    if request.user.is_authenticated:
        memberships = list(
            AccountMember.objects.filter(user=request.user)
            .select_related("account")
            .order_by("account__name", "account_id")
        )
    request._survey_memberships = memberships  # type: ignore[attr-defined]
    return memberships


def current_membership_or_none(request: HttpRequest) -> AccountMember | None:
    """The user's membership of the current account; None when they have no account yet
    (the Survey home page then offers to create one)."""
    cached = getattr(request, "_survey_membership", None)
    if cached is not None:
        return cached
    memberships = memberships_of(request)
    if not memberships:
        return None
    wanted = request.session.get(SESSION_KEY)
    membership = next((m for m in memberships if m.account_id == wanted), memberships[0])
    if wanted != membership.account_id:  # write the session only when it changes
        request.session[SESSION_KEY] = membership.account_id
    request._survey_membership = membership  # type: ignore[attr-defined]
    return membership


def current_membership(request: HttpRequest) -> AccountMember:
    """The signed-in user's membership of the current account, or 404."""
    membership = current_membership_or_none(request)
    if membership is None:
        raise Http404("No Survey account")
    return membership


def switch_account(request: HttpRequest, account_id: int) -> AccountMember:
    """Make `account_id` the current account (one the user has just joined or created in
    this request too), or 404."""
    request._survey_memberships = None  # type: ignore[attr-defined]
    membership = next((m for m in memberships_of(request) if m.account_id == account_id), None)
    if membership is None:
        raise Http404("No such account")
    request.session[SESSION_KEY] = account_id
    request._survey_membership = membership  # type: ignore[attr-defined]
    return membership


def get_admin_membership(request: HttpRequest) -> AccountMember:
    """The current membership when it is an administrator's, else 403."""
    membership = current_membership(request)
    if not membership.is_administrator:
        raise PermissionDenied
    return membership


def get_portal_for_member(request: HttpRequest, pk: int) -> Portal:
    return get_object_or_404(Portal.objects.of(current_membership(request).account_id), pk=pk)


def get_survey_for_member(request: HttpRequest, pk: int) -> Survey:
    account_id = current_membership(request).account_id
    return get_object_or_404(Survey.objects.of(account_id).select_related("portal"), pk=pk)


def get_account_member_for_admin(request: HttpRequest, pk: int) -> AccountMember:
    """A membership of the current account, for an administrator's member pages."""
    account_id = get_admin_membership(request).account_id
    members = AccountMember.objects.of(account_id).select_related("user", "account")
    return get_object_or_404(members, pk=pk)


def get_member_invitation_for_admin(request: HttpRequest, pk: int) -> MemberInvitation:
    """A pending invitation of the current account, for an administrator's member pages."""
    account_id = get_admin_membership(request).account_id
    invitations = MemberInvitation.objects.of(account_id).select_related("account")
    return get_object_or_404(invitations, pk=pk)


def pending_invitations_of(request: HttpRequest) -> list[MemberInvitation]:
    """The invitations waiting for the signed-in user's answer (matched by email address)."""
    if not request.user.is_authenticated:
        return []
    return list(
        MemberInvitation.objects.filter(
            email=request.user.email.lower(), expires_at__gt=timezone.now()
        )
        .select_related("account", "invited_by")
        .order_by("created_at", "pk")
    )


def get_member_invitation_for_invitee(request: HttpRequest, pk: int) -> MemberInvitation:
    """One of pending_invitations_of(request); anyone else's is a 404."""
    invitation = next((i for i in pending_invitations_of(request) if i.pk == pk), None)
    if invitation is None:
        raise Http404("No such invitation")
    return invitation


def find_member_invitation(token: str) -> MemberInvitation | None:
    """The invitation an emailed link's token stands for (expired too), or None."""
    return (
        MemberInvitation.objects.select_related("account", "invited_by")
        .filter(token_hash=MemberInvitation.hash(token))
        .first()
    )


def get_portal_for_admin(request: HttpRequest, pk: int) -> Portal:
    return get_object_or_404(Portal.objects.of(get_admin_membership(request).account_id), pk=pk)


def get_question_for_member(request: HttpRequest, survey_pk: int, pk: int) -> Question:
    survey = get_survey_for_member(request, survey_pk)
    question = get_object_or_404(Question.objects.select_related("section"), survey=survey, pk=pk)
    question.survey = survey
    return question


def get_section_for_member(request: HttpRequest, survey_pk: int, pk: int) -> Section:
    survey = get_survey_for_member(request, survey_pk)
    section = get_object_or_404(Section, survey=survey, pk=pk)
    section.survey = survey
    return section
