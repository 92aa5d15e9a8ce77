"""Who may see what in the Survey service: every lookup is scoped to the current account.

An id from another account is a 404; a plain member on an administrator page is
a 403. The current account is kept in the session.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404

from kizuna.survey.models import AccountMember, Portal, Question, Section, Survey

SESSION_KEY = "survey_account_id"


def memberships_of(request: HttpRequest) -> list[AccountMember]:
    if not request.user.is_authenticated:
        return []
    return list(
        AccountMember.objects.filter(user=request.user)
        .select_related("account")
        .order_by("account__name", "account_id")
    )


def current_member(request: HttpRequest) -> AccountMember | None:
    """The user's membership of the current account; None when they have no account yet."""
    cached = getattr(request, "_survey_member", None)
    if cached is not None:
        return cached
    memberships = memberships_of(request)
    if not memberships:
        return None
    wanted = request.session.get(SESSION_KEY)
    member = next((m for m in memberships if m.account_id == wanted), memberships[0])
    request.session[SESSION_KEY] = member.account_id
    request._survey_member = member  # type: ignore[attr-defined]
    return member


def switch_account(request: HttpRequest, account_id: int) -> AccountMember:
    member = next((m for m in memberships_of(request) if m.account_id == account_id), None)
    if member is None:
        raise Http404("No such account")
    request.session[SESSION_KEY] = account_id
    request._survey_member = member  # type: ignore[attr-defined]
    return member


def get_member(request: HttpRequest) -> AccountMember:
    member = current_member(request)
    if member is None:
        raise Http404("No Survey account")
    return member


def get_admin_member(request: HttpRequest) -> AccountMember:
    member = get_member(request)
    if not member.is_administrator:
        raise PermissionDenied
    return member


def get_portal_for_member(request: HttpRequest, pk: int) -> Portal:
    return get_object_or_404(Portal, account_id=get_member(request).account_id, pk=pk)


def get_survey_for_member(request: HttpRequest, pk: int) -> Survey:
    account_id = get_member(request).account_id
    return get_object_or_404(
        Survey.objects.select_related("portal"), portal__account_id=account_id, pk=pk
    )


def get_account_member_for_admin(request: HttpRequest, pk: int) -> AccountMember:
    """A membership of the current account, for an administrator's member pages."""
    account_id = get_admin_member(request).account_id
    return get_object_or_404(
        AccountMember.objects.select_related("user", "account"), account_id=account_id, pk=pk
    )


def get_portal_for_admin(request: HttpRequest, pk: int) -> Portal:
    return get_object_or_404(Portal, account_id=get_admin_member(request).account_id, pk=pk)


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
