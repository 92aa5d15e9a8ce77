"""The audit log's filters: one action, one person."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from kizuna.identity.models import User
from kizuna.survey.audit.models import AuditAction, AuditEntry
from kizuna.survey.models import SurveyAccount


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(
        label=_("Action"), choices=[("", _("All actions")), *AuditAction.choices], required=False
    )
    person = forms.ModelChoiceField(
        label=_("Person"), queryset=User.objects.none(), required=False, empty_label=_("Everyone")
    )

    def __init__(self, *args: Any, account: SurveyAccount, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only people with entries in this account: another one's members are not choices.
        actors = AuditEntry.objects.of(account).values("actor_id")
        self.fields["person"].queryset = User.objects.filter(  # type: ignore[attr-defined]
            pk__in=actors
        ).order_by("full_name", "email")
