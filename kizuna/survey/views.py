"""Survey core pages: home, accounts, members, portals."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count, Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from kizuna.survey import access, services
from kizuna.survey.access import signed_in_user
from kizuna.survey.forms import AccountForm, MemberAddForm, MemberRoleForm, PortalForm
from kizuna.survey.models import AccountMember, MemberRole, Portal, Survey
from kizuna.survey.pages import render_form_page, render_page

# --- home and accounts --------------------------------------------------------------------


@login_required
def home(request: HttpRequest) -> HttpResponse:
    member = access.current_membership_or_none(request)
    if member is None:
        return render_page(request, "survey/start.html", {"form": AccountForm()})
    surveys = Survey.objects.annotate(response_count=Count("responses")).order_by(
        "-modified_at", "-id"
    )
    portals = (
        Portal.objects.of(member.account_id)
        .prefetch_related(Prefetch("surveys", queryset=surveys))
        .order_by("name", "id")
    )
    return render_page(request, "survey/home.html", {"portals": portals})


@login_required
def account_new(request: HttpRequest) -> HttpResponse:
    form = AccountForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        account = services.create_account(
            name=form.cleaned_data["name"], owner=signed_in_user(request)
        )
        access.switch_account(request, account.pk)
        messages.success(request, _("Your Survey account is ready. Build your first survey."))
        return redirect("survey:home")
    has_account = access.current_membership_or_none(request) is not None
    template = "survey/account_new.html" if has_account else "survey/start.html"
    return render_form_page(request, template, form, {})


@require_POST
@login_required
def account_switch(request: HttpRequest) -> HttpResponse:
    try:
        account_id = int(request.POST.get("account", ""))
    except ValueError:
        account_id = 0
    access.switch_account(request, account_id)
    return redirect("survey:home")


# --- members ------------------------------------------------------------------------------


@login_required
def members(request: HttpRequest) -> HttpResponse:
    admin = access.get_admin_membership(request)
    form = MemberAddForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            result = services.register_members(
                account=admin.account,
                emails=form.cleaned_data["emails"],
                by=signed_in_user(request),
                role=form.cleaned_data["role"],
            )
        except ValidationError as error:
            form.add_error("emails", error)
        else:
            if result.registered:
                messages.success(
                    request,
                    _("Added: %(emails)s") % {"emails": ", ".join(result.registered)},
                )
            if result.existing:
                messages.info(
                    request,
                    _("Already members: %(emails)s") % {"emails": ", ".join(result.existing)},
                )
            if result.invitation_failed:
                messages.error(
                    request,
                    _(
                        "Added, but the invitation email could not be sent to: %(emails)s. Use "
                        "“Send invitation again” in the list when the mail server works again."
                    )
                    % {"emails": ", ".join(result.invitation_failed)},
                )
            return redirect("survey:members")
    rows = AccountMember.objects.of(admin.account_id).select_related("user").order_by("user__email")
    return render_form_page(
        request,
        "survey/members.html",
        form,
        {"rows": rows, "roles": MemberRole.choices, "nav": "members"},
    )


@require_POST
@login_required
def member_role(request: HttpRequest, pk: int) -> HttpResponse:
    target = access.get_account_member_for_admin(request, pk)
    form = MemberRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose a role."))
        return redirect("survey:members")
    try:
        services.change_member_role(
            member=target, role=form.cleaned_data["role"], by=signed_in_user(request)
        )
    except services.SurveyRuleError as error:
        messages.error(request, str(error))
    else:
        messages.success(
            request,
            _("%(email)s is now: %(role)s")
            % {"email": target.user.email, "role": target.get_role_display()},
        )
    return redirect("survey:members")


@require_POST
@login_required
def member_remove(request: HttpRequest, pk: int) -> HttpResponse:
    target = access.get_account_member_for_admin(request, pk)
    try:
        services.remove_member(member=target, by=signed_in_user(request))
    except services.SurveyRuleError as error:
        messages.error(request, str(error))
        return redirect("survey:members")
    messages.success(
        request, _("%(email)s was removed from the account.") % {"email": target.user.email}
    )
    if target.user_id == request.user.pk:
        return redirect("survey:home")
    return redirect("survey:members")


@require_POST
@login_required
def member_resend(request: HttpRequest, pk: int) -> HttpResponse:
    target = access.get_account_member_for_admin(request, pk)
    if target.user.has_usable_password():
        messages.info(
            request, _("%(email)s has already set a password.") % {"email": target.user.email}
        )
    elif services.resend_invitation(member=target, by=signed_in_user(request)):
        messages.success(
            request, _("The invitation was sent again to %(email)s.") % {"email": target.user.email}
        )
    else:
        messages.error(
            request,
            _(
                "The invitation email to %(email)s could not be sent. Send it again when the mail "
                "server works again."
            )
            % {"email": target.user.email},
        )
    return redirect("survey:members")


# --- portals ------------------------------------------------------------------------------


@login_required
def portals(request: HttpRequest) -> HttpResponse:
    admin = access.get_admin_membership(request)
    form = PortalForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        portal = services.create_portal(
            account=admin.account, name=form.cleaned_data["name"], by=signed_in_user(request)
        )
        messages.success(request, _("Portal “%(name)s” created.") % {"name": portal.name})
        return redirect("survey:portals")
    rows = (
        Portal.objects.of(admin.account_id)
        .annotate(survey_count=Count("surveys"))
        .order_by("name", "id")
    )
    return render_form_page(
        request,
        "survey/portals.html",
        form,
        {"rows": rows, "nav": "portals"},
    )


@login_required
def portal_rename(request: HttpRequest, pk: int) -> HttpResponse:
    portal = access.get_portal_for_admin(request, pk)
    form = PortalForm(request.POST or None, instance=portal)
    if request.method == "POST" and form.is_valid():
        services.rename_portal(
            portal=portal, name=form.cleaned_data["name"], by=signed_in_user(request)
        )
        messages.success(request, _("Portal renamed to “%(name)s”.") % {"name": portal.name})
        return redirect("survey:portals")
    return render_form_page(
        request,
        "survey/portal_rename.html",
        form,
        {"portal": portal, "nav": "portals"},
    )


@require_POST
@login_required
def portal_delete(request: HttpRequest, pk: int) -> HttpResponse:
    portal = access.get_portal_for_admin(request, pk)
    try:
        services.delete_portal(portal=portal, by=signed_in_user(request))
    except services.SurveyRuleError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, _("Portal “%(name)s” deleted.") % {"name": portal.name})
    return redirect("survey:portals")
