"""The audit log's filters: one action, one person."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from kizuna.crm.audit.models import AuditAction, AuditEntry
from kizuna.crm.models import Organization
from kizuna.identity.models import User


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(
        label=_("Action"), choices=[("", _("All actions")), *AuditAction.choices], required=False
    )
    person = forms.ModelChoiceField(
        label=_("Person"), queryset=User.objects.none(), required=False, empty_label=_("Everyone")
    )

    def __init__(self, *args: Any, organization: Organization, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only people with entries in this organization: another one's members are not choices.
        actors = AuditEntry.objects.of(organization).values("actor_id")
        self.fields["person"].queryset = User.objects.filter(  # type: ignore[attr-defined]
            pk__in=actors
        ).order_by("full_name", "email")
