from __future__ import annotations

import datetime
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from kizuna.crm.integration.client import SurveyInfo
from kizuna.crm.integration.sending.services import DEFAULT_EXPIRY_DAYS, MAX_EXPIRY_DAYS
from kizuna.crm.mail.models import EmailTemplate
from kizuna.crm.models import Organization


class SendSurveyForm(forms.Form):
    """Which survey, with which email template, and how long the links work."""

    survey = forms.TypedChoiceField(label=_("Survey"), coerce=int)
    template = forms.ModelChoiceField(
        label=_("Email template"),
        queryset=EmailTemplate.objects.none(),
        required=False,
        empty_label=_("(a short email with the survey link)"),
        help_text=_(
            "The template's survey links go to the survey chosen here; a template without "
            "one gets the link at its end."
        ),
    )
    expiry_days = forms.IntegerField(
        label=_("Links work for (days)"),
        min_value=1,
        max_value=MAX_EXPIRY_DAYS,
        initial=DEFAULT_EXPIRY_DAYS,
        help_text=_(
            "Each link stops working after this many days, or when the survey is closed if "
            "that comes first."
        ),
    )

    def __init__(
        self,
        *args: Any,
        organization: Organization,
        module: str,
        surveys: list[SurveyInfo],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.surveys = {survey.id: survey for survey in surveys}
        survey_field = self.fields["survey"]
        assert isinstance(survey_field, forms.TypedChoiceField)
        survey_field.choices = [(survey.id, survey.title) for survey in surveys]
        template_field = self.fields["template"]
        assert isinstance(template_field, forms.ModelChoiceField)
        template_field.queryset = (
            EmailTemplate.objects.of(organization).filter(module=module).order_by("name", "pk")
        )

    def chosen_survey(self) -> SurveyInfo:
        return self.surveys[self.cleaned_data["survey"]]

    def expires_at(self) -> datetime.datetime:
        return timezone.now() + datetime.timedelta(days=self.cleaned_data["expiry_days"])
