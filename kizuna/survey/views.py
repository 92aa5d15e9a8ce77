"""Survey core pages: home, accounts, members and their invitations, portals."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count, Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from kizuna.identity.forms import NewAccountForm
from kizuna.identity.models import User
from kizuna.survey import access, services
from kizuna.survey.access import signed_in_user
from kizuna.survey.forms import AccountForm, MemberInviteForm, MemberRoleForm, PortalForm
from kizuna.survey.models import AccountMember, MemberInvitation, MemberRole, Portal, Survey
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
    form = MemberInviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            outcomes = services.invite_members(
                account=admin.account,
                emails=form.cleaned_data["emails"],
                by=signed_in_user(request),
                role=form.cleaned_data["role"],
            )
        except ValidationError as error:
            form.add_error("emails", error)
        except services.InvitationsThrottled as error:
            form.add_error("emails", error.message)
        else:
            _report_invitations(request, outcomes)
            return redirect("survey:members")
    rows = AccountMember.objects.of(admin.account_id).select_related("user").order_by("user__email")
    invitations = (
        MemberInvitation.objects.of(admin.account_id).select_related("invited_by").order_by("email")
    )
    return render_form_page(
        request,
        "survey/members.html",
        form,
        {
            "rows": rows,
            "invitations": invitations,
            "now": timezone.now(),
            "roles": MemberRole.choices,
            "nav": "members",
        },
    )


def _report_invitations(request: HttpRequest, outcomes: list[services.InvitationOutcome]) -> None:
    def emails(status: services.InvitationStatus, *, mail_sent: bool = True) -> str:
        return ", ".join(
            o.email for o in outcomes if o.status == status and o.mail_sent == mail_sent
        )

    invited = emails(services.InvitationStatus.INVITED)
    not_sent = emails(services.InvitationStatus.INVITED, mail_sent=False)
    already = emails(services.InvitationStatus.ALREADY_INVITED, mail_sent=False)
    existing = emails(services.InvitationStatus.EXISTING, mail_sent=False)
    if invited:
        messages.success(
            request,
            _("Invited: %(emails)s. They become members when they accept.") % {"emails": invited},
        )
    if already:
        messages.info(
            request, _("Invited already, still pending: %(emails)s") % {"emails": already}
        )
    if existing:
        messages.info(request, _("Already members: %(emails)s") % {"emails": existing})
    if not_sent:
        messages.error(
            request,
            _(
                "Invited, but the invitation email could not be sent to: %(emails)s. Use “Send "
                "again” in the list of invitations when the mail server works again."
            )
            % {"emails": not_sent},
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
def member_invitation_resend(request: HttpRequest, pk: int) -> HttpResponse:
    invitation = access.get_member_invitation_for_admin(request, pk)
    try:
        sent = services.resend_member_invitation(invitation=invitation, by=signed_in_user(request))
    except services.InvitationsThrottled as error:
        messages.error(request, error.message)
        return redirect("survey:members")
    if sent:
        messages.success(
            request,
            _("The invitation was sent again to %(email)s, with a new link.")
            % {"email": invitation.email},
        )
    else:
        messages.error(
            request,
            _(
                "The invitation email to %(email)s could not be sent. Send it again when the mail "
                "server works again."
            )
            % {"email": invitation.email},
        )
    return redirect("survey:members")


@require_POST
@login_required
def member_invitation_withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    invitation = access.get_member_invitation_for_admin(request, pk)
    services.withdraw_member_invitation(invitation=invitation, by=signed_in_user(request))
    messages.success(
        request, _("The invitation to %(email)s was withdrawn.") % {"email": invitation.email}
    )
    return redirect("survey:members")


# --- invitations, as the invited person sees them --------------------------------------------


@require_POST
@login_required
def invitation_accept(request: HttpRequest, pk: int) -> HttpResponse:
    invitation = access.get_member_invitation_for_invitee(request, pk)
    try:
        member = services.accept_member_invitation(
            invitation=invitation, user=signed_in_user(request)
        )
    except services.MemberInvitationError as error:
        messages.error(request, str(error))
        return redirect("survey:home")
    return _joined(request, member)


@require_POST
@login_required
def invitation_decline(request: HttpRequest, pk: int) -> HttpResponse:
    invitation = access.get_member_invitation_for_invitee(request, pk)
    try:
        services.decline_member_invitation(invitation=invitation, by=signed_in_user(request))
    except services.MemberInvitationError as error:
        messages.error(request, str(error))
    else:
        messages.success(
            request,
            _("You declined the invitation to “%(account)s”.")
            % {"account": invitation.account.name},
        )
    return redirect("survey:home")


def _joined(request: HttpRequest, member: AccountMember) -> HttpResponse:
    access.switch_account(request, member.account_id)
    messages.success(
        request,
        _("Welcome to the Survey account “%(account)s”.") % {"account": member.account.name},
    )
    return redirect("survey:home")


def join(request: HttpRequest, token: str) -> HttpResponse:
    """The link of an invitation email: accept or decline, signed in as the invited address,
    or creating its user when it has none here."""
    invitation = access.find_member_invitation(token)
    if invitation is None or invitation.is_expired():
        problem = (
            _("This invitation has expired. Ask an administrator of the account for a new one.")
            if invitation is not None
            else _(
                "This invitation is no longer valid: it was accepted, declined or withdrawn. "
                "Ask an administrator of the account for a new one."
            )
        )
        return render(request, "survey/join.html", {"problem": problem}, status=410)
    invitee = User.objects.filter(email__iexact=invitation.email).first()
    needs_user = not request.user.is_authenticated and (
        invitee is None or not invitee.has_usable_password()
    )
    account_form = NewAccountForm(
        request.POST if request.POST.get("answer") == "accept" else None, email=invitation.email
    )
    status = 200
    if request.method == "POST":
        try:
            if request.POST.get("answer") == "decline":
                services.decline_member_invitation(
                    invitation=invitation,
                    by=signed_in_user(request) if request.user.is_authenticated else None,
                )
                messages.success(
                    request,
                    _("You declined the invitation to “%(account)s”.")
                    % {"account": invitation.account.name},
                )
                return redirect(
                    "survey:home" if request.user.is_authenticated else "identity:login"
                )
            if request.user.is_authenticated:
                member = services.accept_member_invitation(
                    invitation=invitation, user=signed_in_user(request)
                )
                return _joined(request, member)
            if needs_user and account_form.is_valid():
                member = services.create_user_and_accept_member_invitation(
                    invitation=invitation,
                    full_name=account_form.cleaned_data["full_name"],
                    password=account_form.cleaned_data["password1"],
                )
                login(request, member.user, backend="django.contrib.auth.backends.ModelBackend")
                return _joined(request, member)
        except services.MemberInvitationError as error:
            messages.error(request, str(error))
        status = 400
    sign_in_url = reverse("identity:login") + "?" + urlencode({"next": request.get_full_path()})
    return render(
        request,
        "survey/join.html",
        {
            "invitation": invitation,
            "is_for_this_user": request.user.is_authenticated
            and request.user.email.lower() == invitation.email,
            "needs_user": needs_user,
            "account_form": account_form,
            "sign_in_url": sign_in_url,
        },
        status=status,
    )


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
