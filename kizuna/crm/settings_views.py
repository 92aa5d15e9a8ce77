"""Settings (administrators only) and accepting an invitation to an organization."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from kizuna.crm import extensions, services
from kizuna.crm.access import (
    find_invitation,
    get_invitation_for_admin,
    get_membership_for_admin,
    get_organization_for_admin,
    signed_in_user,
    switch_organization,
)
from kizuna.crm.forms import InviteForm, OrganizationForm, RoleForm
from kizuna.crm.models import MemberInvitation, Membership, Organization, Role
from kizuna.identity.forms import NewAccountForm


@login_required
def settings_home(request: HttpRequest) -> HttpResponse:
    organization = get_organization_for_admin(request)
    form = OrganizationForm(request.POST or None, initial={"name": organization.name})
    if request.method == "POST" and form.is_valid():
        services.rename_organization(
            organization=organization, name=form.cleaned_data["name"], by=signed_in_user(request)
        )
        messages.success(request, _("The organization's name was saved."))
        return redirect("crm:settings")
    return render(
        request,
        "crm/settings_home.html",
        {
            "organization": organization,
            "form": form,
            "member_count": Membership.objects.filter(
                organization=organization, is_active=True
            ).count(),
            "extension_count": len(extensions.extensions(request, organization)),
        },
    )


def _members_page(
    request: HttpRequest, organization: Organization, invite_form: InviteForm, status: int = 200
) -> HttpResponse:
    memberships = (
        Membership.objects.filter(organization=organization)
        .select_related("user")
        .order_by("-is_active", "role", "user__full_name", "user__email")
    )
    invitations = MemberInvitation.objects.filter(
        organization=organization, accepted_at__isnull=True
    ).order_by("-created_at")
    return render(
        request,
        "crm/settings_members.html",
        {
            "organization": organization,
            "memberships": [
                (m, RoleForm(initial={"role": m.role}, prefix=f"m{m.pk}")) for m in memberships
            ],
            "invitations": invitations,
            "invite_form": invite_form,
            "now": timezone.now(),
            "roles": Role,
        },
        status=status,
    )


@login_required
def settings_members(request: HttpRequest) -> HttpResponse:
    organization = get_organization_for_admin(request)
    return _members_page(request, organization, InviteForm())


@require_POST
@login_required
def member_invite(request: HttpRequest) -> HttpResponse:
    organization = get_organization_for_admin(request)
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            invitation, _token = services.invite_member(
                organization=organization,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                by=signed_in_user(request),
            )
        except services.InvitationError as error:
            form.add_error("email", str(error))
        except services.InvitationEmailError as error:
            messages.error(request, str(error))
            return redirect("crm:settings-members")
        else:
            messages.success(
                request,
                _("An invitation was sent to %(email)s. The link works for 7 days.")
                % {"email": invitation.email},
            )
            return redirect("crm:settings-members")
    return _members_page(request, organization, form, status=400)


@require_POST
@login_required
def member_role(request: HttpRequest, pk: int) -> HttpResponse:
    membership = get_membership_for_admin(request, pk)
    form = RoleForm(request.POST, prefix=f"m{membership.pk}")
    if not form.is_valid():
        messages.error(request, _("Choose a role."))
        return redirect("crm:settings-members")
    try:
        services.change_role(
            membership=membership, role=form.cleaned_data["role"], by=signed_in_user(request)
        )
    except services.LastAdministratorError as error:
        messages.error(request, str(error))
    else:
        messages.success(
            request,
            _("%(name)s is now: %(role)s.")
            % {"name": membership.user.get_full_name(), "role": membership.get_role_display()},
        )
    return redirect("crm:settings-members")


@require_POST
@login_required
def member_deactivate(request: HttpRequest, pk: int) -> HttpResponse:
    membership = get_membership_for_admin(request, pk)
    try:
        services.deactivate_member(membership=membership, by=signed_in_user(request))
    except services.LastAdministratorError as error:
        messages.error(request, str(error))
    else:
        messages.success(
            request,
            _("%(name)s was deactivated and can no longer open this organization.")
            % {"name": membership.user.get_full_name()},
        )
    return redirect("crm:settings-members")


@require_POST
@login_required
def member_reactivate(request: HttpRequest, pk: int) -> HttpResponse:
    membership = get_membership_for_admin(request, pk)
    services.reactivate_member(membership=membership, by=signed_in_user(request))
    messages.success(
        request, _("%(name)s is active again.") % {"name": membership.user.get_full_name()}
    )
    return redirect("crm:settings-members")


@require_POST
@login_required
def invitation_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    invitation = get_invitation_for_admin(request, pk)
    services.revoke_invitation(invitation=invitation, by=signed_in_user(request))
    messages.success(
        request, _("The invitation for %(email)s was withdrawn.") % {"email": invitation.email}
    )
    return redirect("crm:settings-members")


@require_POST
@login_required
def invitation_resend(request: HttpRequest, pk: int) -> HttpResponse:
    invitation = get_invitation_for_admin(request, pk)
    if invitation.accepted_at is not None:
        messages.info(
            request,
            _("%(email)s has already accepted the invitation.") % {"email": invitation.email},
        )
        return redirect("crm:settings-members")
    try:
        services.resend_invitation(invitation=invitation, by=signed_in_user(request))
    except services.InvitationEmailError as error:
        messages.error(request, str(error))
    else:
        messages.success(
            request,
            _("The invitation was sent again to %(email)s. The new link works for 7 days.")
            % {"email": invitation.email},
        )
    return redirect("crm:settings-members")


@login_required
def settings_extensions(request: HttpRequest) -> HttpResponse:
    organization = get_organization_for_admin(request)
    return render(
        request,
        "crm/settings_extensions.html",
        {"organization": organization, "extensions": extensions.extensions(request, organization)},
    )


def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """The link of an invitation email: sign in (or create the account), then join."""
    from kizuna.identity.models import User

    found = find_invitation(token)
    problem = services.invitation_problem(found, now=timezone.now())
    if problem is not None or found is None:
        return render(request, "crm/invitation.html", {"problem": problem}, status=410)
    has_account = User.objects.filter(email__iexact=found.email).exists()
    account_form = None
    if not request.user.is_authenticated and not has_account:
        account_form = NewAccountForm(request.POST or None, email=found.email)

    if request.method == "POST":
        try:
            if request.user.is_authenticated:
                membership = services.accept_invitation(token=token, user=signed_in_user(request))
            elif account_form is not None and account_form.is_valid():
                membership = services.create_account_and_accept_invitation(
                    token=token,
                    full_name=account_form.cleaned_data["full_name"],
                    password=account_form.cleaned_data["password1"],
                )
                login(
                    request,
                    membership.user,
                    backend="django.contrib.auth.backends.ModelBackend",
                )
            else:
                membership = None
        except services.InvitationError as error:
            messages.error(request, str(error))
            membership = None
        if membership is not None:
            switch_organization(request, membership.organization_id)
            messages.success(
                request,
                _("Welcome to %(organization)s.") % {"organization": membership.organization.name},
            )
            return redirect("crm:home")

    sign_in_url = reverse("identity:login") + "?" + urlencode({"next": request.get_full_path()})
    return render(
        request,
        "crm/invitation.html",
        {
            "invitation": found,
            "is_for_this_user": request.user.is_authenticated
            and request.user.email.lower() == found.email.lower(),
            "has_account": has_account,
            "account_form": account_form,
            "sign_in_url": sign_in_url,
        },
        status=400 if request.method == "POST" else 200,
    )
