from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from kizuna.crm.mail.models import EmailTemplate, Module
from kizuna.crm.mail.rendering import unknown_placeholders
from kizuna.crm.models import Organization

MERGE_TARGET = {"data-merge-target": "true"}


def _check_placeholders(form: forms.Form, module: str, names: tuple[str, ...]) -> None:
    for name in names:
        unknown = unknown_placeholders(form.cleaned_data.get(name) or "", module)
        if unknown:
            form.add_error(
                name,
                _("Unknown merge fields: %(fields)s. Use the “Insert merge field” list.")
                % {"fields": ", ".join(unknown)},
            )


class MessageFields(forms.Form):
    """Subject and bodies, shared by the template editor and the compose form."""

    subject = forms.CharField(
        label=_("Subject"), max_length=500, widget=forms.TextInput(attrs=MERGE_TARGET)
    )
    body_html = forms.CharField(
        label=_("Body (HTML)"),
        required=False,
        widget=forms.Textarea(attrs={**MERGE_TARGET, "rows": 14, "class": "mail-code"}),
        help_text=_("HTML is cleaned when saved: scripts, styles and event handlers are removed."),
    )
    body_text = forms.CharField(
        label=_("Body (plain text)"),
        required=False,
        widget=forms.Textarea(attrs={**MERGE_TARGET, "rows": 8}),
        help_text=_("Leave empty to derive the plain-text part from the HTML."),
    )

    module: str

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if (
            not (cleaned.get("body_html") or "").strip()
            and not (cleaned.get("body_text") or "").strip()
        ):
            raise forms.ValidationError(_("Write the body in HTML, in plain text or both."))
        return cleaned


class TemplateForm(MessageFields):
    name = forms.CharField(label=_("Template name"), max_length=200)
    module = forms.ChoiceField(label=_("Module"), choices=Module.choices)  # type: ignore[assignment]
    field_order = ("name", "module", "subject", "body_html", "body_text")

    def __init__(self, *args: Any, fixed_module: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fixed_module = fixed_module
        if fixed_module is not None:
            # Merge fields belong to a module: a template keeps the module it was made for.
            del self.fields["module"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        module = self.fixed_module or cleaned.get("module")
        if module:
            _check_placeholders(self, module, ("subject", "body_html", "body_text"))
        return cleaned

    @classmethod
    def initial_from(cls, template: EmailTemplate) -> dict[str, str]:
        return {
            "name": template.name,
            "subject": template.subject,
            "body_html": template.body_html,
            "body_text": template.body_text,
        }


class ComposeForm(MessageFields):
    template = forms.ModelChoiceField(
        label=_("Template"),
        queryset=EmailTemplate.objects.none(),
        required=False,
        # Chosen with "Start from a template" above the form; kept to link the batch to it.
        widget=forms.HiddenInput,
    )
    field_order = ("template", "subject", "body_html", "body_text")

    def __init__(self, *args: Any, organization: Organization, module: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.module = module
        template_field = self.fields["template"]
        assert isinstance(template_field, forms.ModelChoiceField)
        template_field.queryset = (
            EmailTemplate.objects.of(organization).filter(module=module).order_by("name", "pk")
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        _check_placeholders(self, self.module, ("subject", "body_html", "body_text"))
        return cleaned
