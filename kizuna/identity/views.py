from __future__ import annotations

import logging
from typing import Any

import nh3
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.contrib.messages.views import SuccessMessageMixin
from django.core.exceptions import NON_FIELD_ERRORS
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils import translation
from django.utils.html import escape
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.utils.translation.trans_real import parse_accept_lang_header
from django.views.decorators.http import require_POST

from kizuna.identity import forms, services
from kizuna.identity import mailbox as local_mailbox
from kizuna.identity.models import User

logger = logging.getLogger(__name__)


class SignInView(auth_views.LoginView):
    """Sign-in by email, throttled per email and client address (see services)."""

    form_class = forms.SignInForm
    template_name = "identity/sign_in.html"
    redirect_authenticated_user = True

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        services.clear_sign_in_failures(
            email=form.cleaned_data["username"], address=services.client_address(self.request)
        )
        response = super().form_valid(form)
        language = getattr(form.get_user(), "language", "")
        if language:
            # So the pages after signing out keep the language the user chose.
            _set_language_cookie(response, language)
        return response

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        if form.has_error(NON_FIELD_ERRORS, "throttled"):
            return self.render_to_response(self.get_context_data(form=form), status=429)
        if form.has_error(NON_FIELD_ERRORS, "invalid_login"):
            services.record_sign_in_failure(
                email=form.cleaned_data["username"],
                address=services.client_address(self.request),
            )
        return super().form_invalid(form)


class SignOutView(auth_views.LogoutView):
    """Sign-out (POST only, as Django's view): the language cookie outlives the session."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().post(request, *args, **kwargs)
        messages.info(request, _("You are signed out."))
        return response


class PasswordChangeView(SuccessMessageMixin, auth_views.PasswordChangeView):
    template_name = "identity/password_change.html"
    success_url = reverse_lazy("identity:profile")
    success_message = gettext_lazy("Your password is changed.")


class PasswordResetView(auth_views.PasswordResetView):
    """Mails a reset link, rate limited per client address and per email (see services).

    A limited request is answered as a sent one: the page never says whether an
    account uses the email, nor whether a mail went out.
    """

    form_class = forms.PasswordResetForm
    template_name = "identity/password_reset.html"
    email_template_name = "identity/password_reset_email.txt"
    subject_template_name = "identity/password_reset_subject.txt"
    success_url = reverse_lazy("identity:password-reset-sent")

    def form_valid(self, form: PasswordResetForm) -> HttpResponse:
        address = services.client_address(self.request)
        if services.take_password_reset_slot(email=form.cleaned_data["email"], address=address):
            return super().form_valid(form)
        logger.warning("Password reset rate limit reached; no email sent (client %s).", address)
        return HttpResponseRedirect(self.get_success_url())


class PasswordResetSentView(auth_views.PasswordResetDoneView):
    template_name = "identity/password_reset_sent.html"


class PasswordResetConfirmView(SuccessMessageMixin, auth_views.PasswordResetConfirmView):
    template_name = "identity/password_reset_confirm.html"
    success_url = reverse_lazy("identity:login")
    success_message = gettext_lazy("Your password is set. Sign in with it now.")


def _browser_language(request: HttpRequest) -> str:
    """The language Accept-Language asks for, ignoring the cookie (for "follow the browser")."""
    for code, _quality in parse_accept_lang_header(request.headers.get("Accept-Language", "")):
        if code == "*":
            break
        try:
            return translation.get_supported_language_variant(code)
        except LookupError:
            continue
    return settings.LANGUAGE_CODE


def _set_language_cookie(response: HttpResponse, language: str) -> None:
    if language:
        response.set_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            language,
            max_age=settings.LANGUAGE_COOKIE_AGE,
            samesite="Lax",
            httponly=True,
        )
    else:
        response.delete_cookie(settings.LANGUAGE_COOKIE_NAME, samesite="Lax")


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    """The signed-in user's name and language (empty language: follow the browser)."""
    user = request.user
    assert isinstance(user, User)
    form = forms.ProfileForm(
        request.POST or None, initial={"full_name": user.full_name, "language": user.language}
    )
    if request.method == "POST" and form.is_valid():
        language = form.cleaned_data["language"]
        services.update_profile(
            user=user, full_name=form.cleaned_data["full_name"], language=language
        )
        # The message below must already speak the language just chosen.
        translation.activate(language or _browser_language(request))
        messages.success(request, _("Your profile is saved."))
        response = redirect("identity:profile")
        _set_language_cookie(response, language)
        return response
    return render(request, "identity/profile.html", {"form": form})


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """Switch the language; remembered on the user when signed in, in a cookie always."""
    language = request.POST.get("language", "")
    next_url = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = "/"
    response = redirect(next_url)
    if language not in dict(settings.LANGUAGES):
        return response
    if isinstance(request.user, User):
        services.set_user_language(user=request.user, language=language)
    _set_language_cookie(response, language)
    return response


@login_required
def mailbox(request: HttpRequest) -> HttpResponse:
    """The local mailbox (only when no SMTP server is configured)."""
    if not local_mailbox.in_use():
        raise Http404
    return render(
        request,
        "identity/mailbox.html",
        {"messages_list": local_mailbox.readable_messages(request.user)},
    )


def _show_hidden_links(text: str, *, is_html: bool = False) -> str:
    label = _("[link shown only to the recipient]")
    return text.replace(local_mailbox.HIDDEN, escape(label) if is_html else label)


def _without_hidden_links(tag: str, attribute: str, value: str) -> str | None:
    return None if local_mailbox.HIDDEN in value else value


@login_required
def mailbox_message(request: HttpRequest, name: str) -> HttpResponse:
    """One message whole, or the sender's copy with the recipient's links hidden."""
    if not local_mailbox.in_use():
        raise Http404
    readable = local_mailbox.readable_message(request.user, name)
    if readable is None:
        raise Http404
    message, is_sender_copy = readable
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    cleaned = nh3.clean(html.get_content(), attribute_filter=_without_hidden_links) if html else ""
    return render(
        request,
        "identity/mailbox_message.html",
        {
            "subject": _show_hidden_links(str(message.get("Subject", ""))),
            "is_sender_copy": is_sender_copy,
            "headers": [(key, _show_hidden_links(str(value))) for key, value in message.items()],
            "text": _show_hidden_links(text.get_content()) if text else "",
            "html": _show_hidden_links(cleaned, is_html=True),
        },
    )
