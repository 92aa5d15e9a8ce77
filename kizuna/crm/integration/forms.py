"""The forms of the Survey integration's pages: setup steps (S3-S8), reconnecting (K2)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from kizuna.crm.integration.models import ConnectionMethod


class MethodForm(forms.Form):
    """S3: which Survey account the integration uses."""

    method = forms.ChoiceField(
        label=_("Set up the integration with"),
        choices=[
            (
                ConnectionMethod.OTHER_ACCOUNT,
                _("Another user's Survey account (with its SC key)"),
            ),
            (ConnectionMethod.OWN_ACCOUNT, _("My own Survey account")),
        ],
        widget=forms.RadioSelect,
    )


class CredentialsForm(forms.Form):
    """S4: the SC key of another user's account and the email address it belongs to."""

    email = forms.EmailField(
        label=_("Email address of the SC key"),
        max_length=254,
        help_text=_("Shown next to the key in Survey > Settings > SC key."),
    )
    key = forms.CharField(
        label=_("SC key"),
        max_length=200,
        strip=True,
        widget=forms.PasswordInput(render_value=True, attrs={"autocomplete": "off"}),
    )


class AccountChoiceForm(forms.Form):
    """S7: the Survey account to use, when the administrator has several."""

    account = forms.TypedChoiceField(
        label=_("Survey account"), coerce=int, widget=forms.RadioSelect
    )

    def __init__(self, *args: Any, accounts: list[tuple[int, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["account"].choices = accounts  # type: ignore[attr-defined]


class PortalsForm(forms.Form):
    """S5: all surveys of the account, or a choice of its portals."""

    use_all = forms.BooleanField(label=_("Use all surveys of this account"), required=False)
    portals = forms.TypedMultipleChoiceField(
        label=_("Or use the surveys of these portals"),
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args: Any, portals: list[tuple[int, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["portals"].choices = portals  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("use_all") and not data.get("portals"):
            raise forms.ValidationError(
                _("Tick “Use all surveys of this account”, or choose at least one portal.")
            )
        return data


class AdministratorsForm(forms.Form):
    """S6: optionally add every CRM administrator who is not a Survey user yet."""

    add_all = forms.BooleanField(
        label=_("Add all CRM administrators to Survey"),
        required=False,
        help_text=_(
            "Those who are not Survey users yet are invited to the Survey account as its "
            "administrators."
        ),
    )


class UsersForm(forms.Form):
    """S8: all CRM administrators, or users the administrator picks."""

    ALL = "all"
    CHOSEN = "chosen"

    who = forms.ChoiceField(
        label=_("Survey users"),
        choices=[
            (ALL, _("All CRM administrators")),
            (CHOSEN, _("The users I choose")),
        ],
        initial=ALL,
        widget=forms.RadioSelect,
    )
    users = forms.TypedMultipleChoiceField(
        label=_("Users"), coerce=int, required=False, widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args: Any, users: list[tuple[int, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["users"].choices = users  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("who") == self.CHOSEN and not data.get("users"):
            self.add_error("users", _("Choose at least one user, or choose all administrators."))
        return data


class FinishDisablingForm(forms.Form):
    """The final work after disabling stopped: a new SC key of the same account to finish
    with, or none to try again with the stored one."""

    # Which disabled connection (the newest stopped one when empty).
    connection_id = forms.IntegerField(required=False, widget=forms.HiddenInput)
    email = forms.EmailField(label=_("Email address of the SC key"), max_length=254)
    key = forms.CharField(
        label=_("New SC key"),
        max_length=200,
        strip=True,
        required=False,
        help_text=_("Leave it empty to try again with the stored key."),
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
    )


class ReconnectForm(forms.Form):
    """K2: the new SC key after the old one was regenerated at the Survey service."""

    email = forms.EmailField(label=_("Email address of the SC key"), max_length=254)
    key = forms.CharField(
        label=_("New SC key"),
        max_length=200,
        strip=True,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
    )
