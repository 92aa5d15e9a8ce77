from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterator
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import forms as auth_forms
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from kizuna.identity import mailbox, services
from kizuna.identity.models import User
from kizuna.lib.text import validate_single_line

logger = logging.getLogger(__name__)


class SignInForm(auth_forms.AuthenticationForm):
    """Email and password; a throttled pair is refused before the password is checked."""

    error_messages = {
        **auth_forms.AuthenticationForm.error_messages,
        "invalid_login": _("The email address or the password is wrong."),
    }

    def __init__(self, request: HttpRequest | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(request, *args, **kwargs)
        self.fields["username"].widget.attrs["autocomplete"] = "email"
        self.fields["username"].widget.input_type = "email"
        self.wait_minutes = 0

    def clean(self) -> dict[str, Any]:
        email = self.cleaned_data.get("username")
        if email and self.request is not None:
            self.wait_minutes = services.sign_in_wait_minutes(
                email=email, address=services.client_address(self.request)
            )
            if self.wait_minutes:
                raise ValidationError(
                    ngettext(
                        "Too many failed sign-ins for this email address from your network. "
                        "Wait %(minutes)d minute, then try again.",
                        "Too many failed sign-ins for this email address from your network. "
                        "Wait %(minutes)d minutes, then try again.",
                        self.wait_minutes,
                    ),
                    code="throttled",
                    params={"minutes": self.wait_minutes},
                )
        return super().clean()


def _language_choices() -> list[tuple[str, Any]]:
    return [("", _("Follow the browser")), *settings.LANGUAGES]


class ProfileForm(forms.Form):
    full_name = forms.CharField(
        label=_("Full name"), max_length=150, required=False, validators=[validate_single_line]
    )
    language = forms.ChoiceField(
        label=_("Language"),
        choices=_language_choices,
        required=False,
        help_text=_("Follow the browser uses the language your browser asks for."),
    )


class PasswordResetForm(auth_forms.PasswordResetForm):
    """Writes the reset email in the recipient's own language when they chose one.

    People invited to a Survey account or a CRM organization get a user without a
    password; until their first sign-in "forgot password" must work for them too,
    where Django's form skips every user without a usable password.
    """

    def get_users(self, email: str) -> Iterator[Any]:
        yield from super().get_users(email)
        # Django's own matching rule (NFKC + casefold, as its form compares emails),
        # for the invited users its form leaves out.
        wanted = unicodedata.normalize("NFKC", email).casefold()
        invited = User.objects.filter(email__iexact=email, is_active=True, last_login=None)
        for user in invited:
            same = unicodedata.normalize("NFKC", user.email).casefold() == wanted
            if same and not user.has_usable_password():
                yield user

    def send_mail(
        self,
        subject_template_name: str,
        email_template_name: str,
        context: dict[str, Any],
        from_email: str | None,
        to_email: str,
        html_email_template_name: str | None = None,
    ) -> None:
        user = context.get("user")
        language = (
            user.language
            if isinstance(user, User) and user.language
            else translation.get_language()
        )
        with translation.override(language):
            subject = "".join(render_to_string(subject_template_name, context).splitlines())
            body = render_to_string(email_template_name, context)
        # Django's send_mail, with the mail marked for the local mailbox: the link is the
        # recipient's alone (no HTML part: the views name no HTML template).
        email = EmailMessage(subject, body, from_email, [to_email])
        mailbox.mark(email, kind=mailbox.MailKind.PASSWORD_RESET, secrets=[context["token"]])
        try:
            email.send()
        except OSError:  # smtplib errors are OSErrors; the visitor is told nothing, as in Django
            logger.exception("Password reset email to user %s could not be sent", context["uid"])


class NewAccountForm(forms.Form):
    """A new user joining by invitation (CRM or Survey): the email is the invitation's."""

    full_name = forms.CharField(
        max_length=150, label=_("Full name"), validators=[validate_single_line]
    )
    password1 = forms.CharField(
        label=_("Password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label=_("Password (again)"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args: Any, email: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.email = email

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        password1, password2 = data.get("password1"), data.get("password2")
        if password1 and password2:
            if password1 != password2:
                self.add_error("password2", _("The two passwords differ."))
            else:
                candidate = User(email=self.email, full_name=data.get("full_name", ""))
                try:
                    password_validation.validate_password(password1, candidate)
                except forms.ValidationError as error:
                    self.add_error("password1", error)
        return data
