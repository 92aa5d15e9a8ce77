"""Forms of the Survey core pages: account, members, portals."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from kizuna.lib.text import validate_single_line
from kizuna.survey.models import MemberRole, Portal
from kizuna.survey.services import normalize_emails

MAX_ITEMS = 100


class AccountForm(forms.Form):
    name = forms.CharField(
        label=_("Account name"), max_length=200, validators=[validate_single_line]
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise ValidationError(_("Enter a name for the account."), code="required")
        return name


class MemberInviteForm(forms.Form):
    emails = forms.CharField(
        label=_("Email addresses"),
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_(
            "One or more addresses, separated by commas or new lines. Each gets an email "
            "inviting them to this account; they become members when they accept."
        ),
    )
    role = forms.ChoiceField(label=_("Role"), choices=MemberRole.choices, initial=MemberRole.MEMBER)

    def clean_emails(self) -> list[str]:
        text = self.cleaned_data["emails"].replace(",", "\n").replace(";", "\n")
        addresses = normalize_emails(text.splitlines())
        if not addresses:
            raise ValidationError(_("Enter at least one email address."), code="required")
        if len(addresses) > MAX_ITEMS:
            raise ValidationError(
                _("Add at most %(limit)d addresses at once."),
                code="too_many",
                params={"limit": MAX_ITEMS},
            )
        return addresses


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=MemberRole.choices)


class PortalForm(forms.ModelForm):
    class Meta:
        model = Portal
        fields = ("name",)
        labels = {"name": _("Portal name")}

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise ValidationError(_("Enter a name for the portal."), code="required")
        return name
