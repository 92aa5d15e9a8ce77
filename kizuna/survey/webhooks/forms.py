from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from kizuna.survey.models import SurveyAccount
from kizuna.survey.webhooks.models import WebhookEndpoint, WebhookEvent
from kizuna.survey.webhooks.services import url_refusal


class WebhookEndpointForm(forms.Form):
    """A new endpoint of the current account (Settings > Webhooks)."""

    url = forms.URLField(
        label=_("URL"),
        max_length=1000,
        assume_scheme="https",
        help_text=_("Where the events are sent, signed in the Standard Webhooks format."),
    )
    events = forms.MultipleChoiceField(
        label=_("Events"),
        choices=WebhookEvent.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[WebhookEvent.RESPONSE_COMPLETED],
    )
    description = forms.CharField(label=_("Description"), max_length=200, required=False)

    def __init__(self, *args: Any, account: SurveyAccount, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.account = account

    def clean_url(self) -> str:
        url: str = self.cleaned_data["url"]
        refusal = url_refusal(url)
        if refusal:
            raise forms.ValidationError(refusal)
        if WebhookEndpoint.objects.filter(account=self.account, url=url.strip()).exists():
            raise forms.ValidationError(_("This URL already has an endpoint."))
        return url


class ResendSinceForm(forms.Form):
    """Resend everything since a moment, in the administrator's time zone."""

    since = forms.DateTimeField(
        label=_("Send again everything since"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
    )
