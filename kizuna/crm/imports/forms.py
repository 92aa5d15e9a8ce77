from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from kizuna.crm.imports.models import ImportModule
from kizuna.crm.imports.rows import REQUIRED_FIELDS, field_label, fields_for


class UploadForm(forms.Form):
    module = forms.ChoiceField(label=_("Import into"), choices=ImportModule.choices)
    file = forms.FileField(
        label=_("CSV file"),
        help_text=_(
            "UTF-8 (with or without BOM) or Shift_JIS, up to 20 MB, with column names in the "
            "first row."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,text/csv"}),
    )


class MappingForm(forms.Form):
    """One choice per column of the file: the field it fills, or nothing."""

    def __init__(
        self,
        *args: Any,
        module: str,
        headers: list[str],
        samples: list[str],
        mapping: dict[str, str],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.module = module
        choices = [("", _("— Do not import —"))] + [
            (spec.name, field_label(module, spec.name)) for spec in fields_for(module)
        ]
        for index, header in enumerate(headers):
            name = f"column_{index}"
            sample = samples[index] if index < len(samples) else ""
            self.fields[name] = forms.ChoiceField(
                label=header or _("Column %(number)s") % {"number": index + 1},
                choices=choices,
                required=False,
                initial=mapping.get(str(index), ""),
                help_text=_("First row: %(sample)s") % {"sample": sample} if sample else "",
            )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        seen: dict[str, str] = {}
        for name, value in list(cleaned.items()):
            if not value:
                continue
            if value in seen:
                self.add_error(
                    name,
                    _("“%(field)s” is already filled from the column “%(column)s”.")
                    % {"field": field_label(self.module, value), "column": seen[value]},
                )
            else:
                seen[value] = str(self.fields[name].label)
        for required in REQUIRED_FIELDS:
            if required not in seen:
                self.add_error(
                    None,
                    _("Choose the column that holds “%(field)s”: it is required.")
                    % {"field": field_label(self.module, required)},
                )
        return cleaned

    def mapping(self) -> dict[str, str]:
        return {
            name.removeprefix("column_"): value
            for name, value in self.cleaned_data.items()
            if value
        }


class StartForm(forms.Form):
    skip_bad_rows = forms.BooleanField(
        label=_("Skip the rows with errors and import the others"),
        required=False,
        help_text=_("Without this, a file with any bad row imports nothing."),
    )
    allow_duplicates = forms.BooleanField(
        label=_("Import duplicates too"),
        required=False,
        help_text=_(
            "Rows whose email address is already in the file or in the organization are "
            "duplicates. Without this, they count as bad rows."
        ),
    )
