"""Settings > Extensions & APIs > Survey (S1, S2), the setup wizard (S3-S9), reconnecting (K2),
disabling (D1-D4), and the webhook intake address (E4, D6)."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from kizuna.crm.access import get_organization_for_admin, signed_in_user
from kizuna.crm.integration import client, forms, services, wizard
from kizuna.crm.integration.client import Credentials, SurveyError
from kizuna.crm.integration.models import (
    REFUSED_OUTCOMES,
    Connection,
    ConnectionMethod,
    IntakeEvent,
    Reconciliation,
    SurveyResponse,
    UnmatchedResponse,
    current_connection,
)
from kizuna.crm.integration.services import IntegrationError
from kizuna.crm.integration.wizard import SetupState
from kizuna.crm.mail.models import EmailTemplate
from kizuna.crm.mail.rendering import uses_namespace
from kizuna.crm.models import Membership, Organization, Role
from kizuna.lib import crypto
from kizuna.lib.api_errors import ErrorCode

HEALTH_WINDOW = datetime.timedelta(days=7)
# Which field of the credentials form an error of the Survey service is about.
CREDENTIAL_FIELDS: dict[client.FailureCode, str] = {
    ErrorCode.UNKNOWN_EMAIL: "email",
    ErrorCode.WRONG_KEY: "key",
    ErrorCode.REVOKED_KEY: "key",
    ErrorCode.INSUFFICIENT_ROLE: "key",
}


# --- the settings page ----------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryHealth:
    """How responses reach the CRM, from what the CRM stored (never a call to Survey)."""

    last_event_at: datetime.datetime | None
    refused_recently: int
    unmatched: int
    responses: int
    last_reconciled_at: datetime.datetime | None
    final_reconciliation_pending: bool


def _health(connection: Connection) -> DeliveryHealth:
    since = timezone.now() - HEALTH_WINDOW
    return DeliveryHealth(
        last_event_at=connection.last_event_at,
        refused_recently=IntakeEvent.objects.filter(
            connection=connection, outcome__in=REFUSED_OUTCOMES, received_at__gte=since
        ).count(),
        unmatched=UnmatchedResponse.objects.filter(
            connection=connection, dismissed_at__isnull=True
        ).count(),
        responses=SurveyResponse.objects.filter(connection=connection).count(),
        last_reconciled_at=connection.last_reconciled_at,
        final_reconciliation_pending=not connection.is_current
        and connection.final_reconciliation_done_at is None,
    )


def templates_with_survey_links(organization: Organization) -> list[EmailTemplate]:
    """D4: the organization's email templates holding a survey link placeholder."""
    candidates = EmailTemplate.objects.of(organization).order_by("name", "pk")
    return [
        template
        for template in candidates
        if any(
            uses_namespace(text, "survey")
            for text in (template.subject, template.body_html, template.body_text)
        )
    ]


@dataclass(frozen=True)
class StoppedDisabling:
    """A disabled connection whose final work stopped, and the form to finish it with."""

    connection: Connection
    work: Reconciliation
    form: forms.FinishDisablingForm

    @property
    def stopped_by_key(self) -> bool:
        return self.work.last_error.split(":", 1)[0] in client.CREDENTIAL_CODES


def _stopped_disablings(
    organization: Organization, posted: forms.FinishDisablingForm | None
) -> list[StoppedDisabling]:
    """Every stopped disabling, also while the integration is enabled again: re-enabling
    leaves the previous connection's final work where it stopped (issue #7)."""
    stopped = []
    for connection, work in services.stopped_disablings(organization):
        if posted is not None and (posted.data.get("connection_id") or "") in (
            "",
            str(connection.pk),
        ):
            form, posted = posted, None
        else:
            form = forms.FinishDisablingForm(
                initial={"email": connection.sc_email, "connection_id": connection.pk}
            )
        form.auto_id = f"id_finish_{connection.pk}_%s"  # several forms on one page
        stopped.append(StoppedDisabling(connection=connection, work=work, form=form))
    return stopped


def _settings_page(
    request: HttpRequest,
    organization: Organization,
    *,
    reconnect_form: forms.ReconnectForm | None = None,
    finish_form: forms.FinishDisablingForm | None = None,
    status: int = 200,
) -> HttpResponse:
    connection = current_connection(organization)
    latest = (
        connection or Connection.objects.of(organization).order_by("-enabled_at", "-pk").first()
    )
    if connection is not None and reconnect_form is None:
        reconnect_form = forms.ReconnectForm(initial={"email": connection.sc_email})
    return render(
        request,
        "crm_integration/settings.html",
        {
            "organization": organization,
            "connection": connection,
            "latest": latest,
            "health": _health(latest) if latest is not None else None,
            "reconnect_form": reconnect_form,
            "stopped_disablings": _stopped_disablings(organization, finish_form),
            "linked_templates": templates_with_survey_links(organization)
            if connection is None and latest is not None
            else [],
            "setup_started": wizard.load(request, organization).method != "",
        },
        status=status,
    )


@login_required
def settings_page(request: HttpRequest) -> HttpResponse:
    return _settings_page(request, get_organization_for_admin(request))


@require_POST
@login_required
def reconnect(request: HttpRequest) -> HttpResponse:
    """K2: the connection in use goes on with a new SC key of its Survey account."""
    return _act_with_key(
        request,
        forms.ReconnectForm(request.POST),
        services.reconnect,
        done=_("The Survey integration is connected again."),
    )


@require_POST
@login_required
def finish_disabling(request: HttpRequest) -> HttpResponse:
    """The final work after disabling stopped: run it again, with a new key if given."""
    return _act_with_key(
        request,
        forms.FinishDisablingForm(request.POST),
        services.finish_disabling,
        done=_(
            "Disabling is finishing: the last check for responses and the removal of "
            "the webhook endpoint run again in a moment."
        ),
    )


def _act_with_key(
    request: HttpRequest,
    form: forms.ReconnectForm | forms.FinishDisablingForm,
    act: Callable[..., Connection],
    *,
    done: str,
) -> HttpResponse:
    """Reconnecting and finishing a disabling alike: `act` with the SC key (and email) of
    `form`; the key's errors go to their field, the page is drawn again with them (422)."""
    organization = get_organization_for_admin(request)
    if form.is_valid():
        try:
            act(organization=organization, by=signed_in_user(request), **form.cleaned_data)
        except SurveyError as error:
            form.add_error(CREDENTIAL_FIELDS.get(error.code), error.message)
        except IntegrationError as error:
            if error.code == "nothing_to_finish":
                messages.info(request, error.message)
                return redirect("crm_integration:settings")
            form.add_error(None, error.message)
        else:
            messages.success(request, done)
            return redirect("crm_integration:settings")
    if isinstance(form, forms.FinishDisablingForm):
        return _settings_page(request, organization, finish_form=form, status=422)
    return _settings_page(request, organization, reconnect_form=form, status=422)


@require_POST
@login_required
def finish_without_survey(request: HttpRequest) -> HttpResponse:
    """The final work after disabling stopped: end it without the Survey service."""
    organization = get_organization_for_admin(request)
    connection_id = request.POST.get("connection_id", "")
    try:
        services.finish_without_survey(
            organization=organization,
            by=signed_in_user(request),
            connection_id=int(connection_id) if connection_id.isdigit() else None,
        )
    except IntegrationError as error:
        messages.info(request, error.message)
    else:
        messages.success(request, _("Disabling is finished without the Survey service."))
    return redirect("crm_integration:settings")


@login_required
def disable(request: HttpRequest) -> HttpResponse:
    """D1-D4: one confirmed action; the templates with survey links are listed, untouched."""
    organization = get_organization_for_admin(request)
    connection = current_connection(organization)
    if connection is None:
        return redirect("crm_integration:settings")
    if request.method == "POST":
        services.disable(organization=organization, by=signed_in_user(request))
        messages.success(request, _("The Survey integration is disabled."))
        return redirect("crm_integration:settings")
    return render(
        request,
        "crm_integration/disable.html",
        {
            "organization": organization,
            "connection": connection,
            "linked_templates": templates_with_survey_links(organization),
        },
    )


# --- the setup wizard -----------------------------------------------------------------------


def _leave_setup(request: HttpRequest) -> HttpResponse:
    """To the settings page: a whole page, not a step swapped into the wizard's card."""
    url = reverse("crm_integration:settings")
    if request.headers.get("HX-Request") == "true":
        return HttpResponseClientRedirect(url)
    return redirect(url)


@login_required
def setup(request: HttpRequest, step: str = "method") -> HttpResponse:
    """One step of the setup (S3-S9); each keeps its answers in the session until the end."""
    organization = get_organization_for_admin(request)
    if current_connection(organization) is not None:
        messages.info(request, _("The Survey integration is already set up."))
        return _leave_setup(request)
    state = wizard.load(request, organization)
    if step not in STEP_VIEWS:
        raise Http404
    open_step = state.first_open_step(step)
    if open_step != step:
        return redirect("crm_integration:setup", step=open_step)
    if request.method == "POST" and "back" in request.POST:
        _keep_typed(request, state, step)
        wizard.save(request, state)
        previous = state.previous(step)
        if previous is None:
            return _leave_setup(request)
        return redirect("crm_integration:setup", step=previous)
    return STEP_VIEWS[step](request, organization, state)


@require_POST
@login_required
def setup_cancel(request: HttpRequest) -> HttpResponse:
    get_organization_for_admin(request)
    wizard.clear(request)
    return _leave_setup(request)


def _keep_typed(request: HttpRequest, state: SetupState, step: str) -> None:
    """Back keeps what was typed on this step, valid or not (nothing is checked or sent)."""
    if step == "credentials":
        state.email = request.POST.get("email", "").strip()[:254]
        key = request.POST.get("key", "").strip()[:200]
        state.key_encrypted = crypto.encrypt_secret(key) if key else ""
        state.account_id = None
    elif step == "portals":
        state.use_all = request.POST.get("use_all") == "on"
        known = {int(p["id"]) for p in state.available_portals}
        state.portal_ids = [
            int(v) for v in request.POST.getlist("portals") if v.isdigit() and int(v) in known
        ]
    elif step == "users":
        state.add_all_administrators = request.POST.get("add_all") == "on"
        if request.POST.get("who") in (forms.UsersForm.ALL, forms.UsersForm.CHOSEN):
            state.who = request.POST["who"]
        state.user_ids = [int(v) for v in request.POST.getlist("users") if v.isdigit()]


def _render_step(
    request: HttpRequest,
    state: SetupState,
    step: str,
    context: dict[str, object],
    *,
    status: int = 200,
) -> HttpResponse:
    if request.headers.get("HX-Request") == "true":
        # htmx swaps no 4xx/5xx answer: the step with its errors must reach the page.
        status = 200
    return render(
        request,
        "crm_integration/setup.html",
        {
            "state": state,
            "step": step,
            "step_number": state.number(step),
            "step_count": len(state.steps()),
            "has_previous": state.previous(step) is not None,
            "step_template": f"crm_integration/setup_{step}.html",
            **context,
        },
        status=status,
    )


def _next(state: SetupState, step: str) -> HttpResponse:
    return redirect("crm_integration:setup", step=state.following(step))


def _step_method(
    request: HttpRequest, organization: Organization, state: SetupState
) -> HttpResponse:
    form = forms.MethodForm(_posted(request), initial={"method": state.method or None})
    if request.method == "POST" and form.is_valid():
        method = form.cleaned_data["method"]
        if method != state.method:
            state.method = method
            state.forget_account()
            state.email, state.key_encrypted, state.accounts = "", "", []
        wizard.save(request, state)
        return _next(state, "method")
    return _render_step(request, state, "method", {"form": form}, status=_status(request, form))


def _posted(request: HttpRequest) -> Any:
    """The POST data to bind a form to (an empty POST too: every box unticked)."""
    return request.POST if request.method == "POST" else None


def _status(request: HttpRequest, form: object) -> int:
    return 422 if request.method == "POST" else 200


def _step_credentials(
    request: HttpRequest, organization: Organization, state: SetupState
) -> HttpResponse:
    typed = state.credentials()
    initial = {"email": state.email, "key": typed.key if typed else ""}
    form = forms.CredentialsForm(_posted(request), initial=initial)
    if request.method == "POST" and form.is_valid():
        credentials = Credentials(
            email=form.cleaned_data["email"].strip(), key=form.cleaned_data["key"]
        )
        try:
            account = client.get_account(credentials)
        except SurveyError as error:
            form.add_error(CREDENTIAL_FIELDS.get(error.code), error.message)
        else:
            if account.id != state.account_id:
                state.forget_account()
            state.set_credentials(credentials)
            state.account_id, state.account_name = account.id, account.name
            wizard.save(request, state)
            return _next(state, "credentials")
    return _render_step(
        request, state, "credentials", {"form": form}, status=_status(request, form)
    )


def _step_account(
    request: HttpRequest, organization: Organization, state: SetupState
) -> HttpResponse:
    """S7: the administrator's own Survey accounts, found (or one created) by the trust token."""
    user = signed_in_user(request)
    choices = [(int(a["id"]), str(a["name"])) for a in state.accounts]
    choice_form = forms.AccountChoiceForm(
        request.POST if request.POST.get("action") == "choose" else None,
        accounts=choices,
        initial={"account": state.account_id},
    )
    error = ""
    if request.method == "POST" and request.POST.get("action") == "lookup":
        try:
            found = client.accounts_for_email(
                email=user.email,
                name=user.get_full_name(),
                language=translation.get_language() or "",
            )
        except SurveyError as failure:
            error = failure.message
        else:
            state.accounts = [
                {
                    "id": account.id,
                    "name": account.name,
                    "key": crypto.encrypt_secret(account.sc_key),
                    "portals": [{"id": p.id, "name": p.name} for p in account.portals],
                }
                for account in found.accounts
            ]
            state.email = found.email
            state.account_created = found.created
            if len(state.accounts) == 1:
                _choose_account(state, int(state.accounts[0]["id"]))
                wizard.save(request, state)
                return _next(state, "account")
            wizard.save(request, state)
            return redirect("crm_integration:setup", step="account")
    if (
        request.method == "POST"
        and request.POST.get("action") == "choose"
        and choice_form.is_valid()
    ):
        _choose_account(state, choice_form.cleaned_data["account"])
        wizard.save(request, state)
        return _next(state, "account")
    return _render_step(
        request,
        state,
        "account",
        {"choice_form": choice_form, "error": error, "email": user.email},
        status=422 if error or choice_form.errors else 200,
    )


def _choose_account(state: SetupState, account_id: int) -> None:
    account = next(a for a in state.accounts if int(a["id"]) == account_id)
    if account_id != state.account_id:
        state.forget_account()
    state.account_id = account_id
    state.account_name = str(account["name"])
    state.key_encrypted = str(account["key"])
    # S7: all the account's portals come with it; the administrator then picks among them.
    state.available_portals = list(account["portals"])


def _step_portals(
    request: HttpRequest, organization: Organization, state: SetupState
) -> HttpResponse:
    credentials = state.credentials()
    assert credentials is not None  # first_open_step() saw to it
    try:
        portals = client.list_portals(credentials)
    except SurveyError as error:
        return _render_step(request, state, "portals", {"error": error.message}, status=502)
    state.available_portals = [{"id": p.id, "name": p.name} for p in portals]
    initial_ids = state.portal_ids
    if not state.is_done("portals") and state.is_own_account:
        initial_ids = [p.id for p in portals]  # S7: all associated, the admin unticks
    form = forms.PortalsForm(
        _posted(request),
        portals=[(p.id, p.name) for p in portals],
        initial={"use_all": state.use_all, "portals": initial_ids},
    )
    if request.method == "POST" and form.is_valid():
        state.use_all = form.cleaned_data["use_all"]
        state.portal_ids = [] if state.use_all else list(form.cleaned_data["portals"])
        wizard.save(request, state)
        return _next(state, "portals")
    wizard.save(request, state)
    return _render_step(request, state, "portals", {"form": form}, status=_status(request, form))


@dataclass(frozen=True)
class SurveyUser:
    """A CRM user as the Survey account knows them: member, invited, or not yet."""

    membership: Membership
    survey_state: str  # "member", "invited" or "missing"

    @property
    def is_administrator(self) -> bool:
        return self.membership.role == Role.ADMINISTRATOR


def _survey_users(organization: Organization, members: list[client.Member]) -> list[SurveyUser]:
    known = {member.email.lower(): member for member in members}
    memberships = (
        Membership.objects.of(organization)
        .filter(is_active=True)
        .select_related("user")
        .order_by("role", "user__full_name", "user__email")
    )
    users = []
    for membership in memberships:
        member = known.get(membership.user.email.lower())
        state = "missing" if member is None else ("member" if member.is_active else "invited")
        users.append(SurveyUser(membership=membership, survey_state=state))
    return users


def _users_to_invite(state: SetupState, users: list[SurveyUser]) -> list[SurveyUser]:
    if state.is_own_account:
        chosen = [
            u
            for u in users
            if (
                u.is_administrator
                if state.who == forms.UsersForm.ALL
                else u.membership.user_id in state.user_ids
            )
        ]
    else:
        chosen = [u for u in users if u.is_administrator] if state.add_all_administrators else []
    return [u for u in chosen if u.survey_state != "member"]


def _step_users(
    request: HttpRequest, organization: Organization, state: SetupState
) -> HttpResponse:
    credentials = state.credentials()
    assert credentials is not None
    try:
        users = _survey_users(organization, client.list_members(credentials))
    except SurveyError as error:
        return _render_step(request, state, "users", {"error": error.message}, status=502)
    data = request.POST if request.method == "POST" else None
    form: forms.AdministratorsForm | forms.UsersForm
    if state.is_own_account:
        form = forms.UsersForm(
            data,
            users=[(u.membership.user_id, u.membership.user.get_full_name()) for u in users],
            initial={"who": state.who, "users": state.user_ids},
        )
    else:
        form = forms.AdministratorsForm(data, initial={"add_all": state.add_all_administrators})
    if data is not None and form.is_valid():
        if isinstance(form, forms.UsersForm):
            state.who = form.cleaned_data["who"]
            state.user_ids = list(form.cleaned_data["users"])
        else:
            state.add_all_administrators = form.cleaned_data["add_all"]
        state.users_done = True
        wizard.save(request, state)
        return _next(state, "users")
    administrators = [u for u in users if u.is_administrator]
    return _render_step(
        request,
        state,
        "users",
        {
            "form": form,
            "users": users,
            "administrators": administrators,
            "missing_administrators": [u for u in administrators if u.survey_state != "member"],
        },
        status=_status(request, form),
    )


def _step_confirm(
    request: HttpRequest, organization: Organization, state: SetupState
) -> HttpResponse:
    credentials = state.credentials()
    assert credentials is not None
    error = ""
    try:
        invitees = _users_to_invite(
            state, _survey_users(organization, client.list_members(credentials))
        )
    except SurveyError as failure:
        invitees, error = [], failure.message
    if request.method == "POST" and not error:
        try:
            connection = services.enable(
                organization=organization,
                by=signed_in_user(request),
                method=ConnectionMethod(state.method),
                credentials=credentials,
                uses_all_portals=state.use_all,
                portals=state.chosen_portals(),
            )
        except (SurveyError, IntegrationError) as failure:
            error = failure.message
        else:
            wizard.clear(request)
            messages.success(
                request,
                _("The Survey integration is enabled: surveys can now be sent from the CRM."),
            )
            if invitees:
                _invite(request, connection, invitees)
            return _leave_setup(request)
    return _render_step(
        request,
        state,
        "confirm",
        {
            "invitees": invitees,
            "error": error,
            "portals": state.chosen_portals(),
            "stopped_disablings": [c for c, _work in services.stopped_disablings(organization)],
        },
        status=502 if error else 200,
    )


def _invite(request: HttpRequest, connection: Connection, invitees: list[SurveyUser]) -> None:
    try:
        results = services.invite_survey_users(
            connection=connection,
            administrators=[u.membership.user.email for u in invitees if u.is_administrator],
            members=[u.membership.user.email for u in invitees if not u.is_administrator],
        )
    except SurveyError as error:
        messages.warning(
            request,
            _(
                "The users could not be added to Survey: %(reason)s "
                "You can add them in Survey > Members."
            )
            % {"reason": error.message},
        )
        return
    invited = [r.email for r in results if r.status != "existing"]
    if invited:
        messages.info(
            request,
            _("Invited to join the Survey account (each received an email to accept): %(emails)s")
            % {"emails": ", ".join(invited)},
        )


STEP_VIEWS = {
    "method": _step_method,
    "credentials": _step_credentials,
    "account": _step_account,
    "portals": _step_portals,
    "users": _step_users,
    "confirm": _step_confirm,
}
