"""Forms of the survey builder: a survey's settings, its sections and questions."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from kizuna.survey import validation
from kizuna.survey.models import Portal, Question, QuestionKind, Section, Survey

CHOICE_KINDS = {QuestionKind.SINGLE_CHOICE, QuestionKind.MULTIPLE_CHOICE, QuestionKind.DROPDOWN}
MAX_ITEMS = 100


class SurveyForm(forms.ModelForm):
    """The survey's own settings; `portal` is limited to the member's account."""

    class Meta:
        model = Survey
        fields = (
            "title",
            "description",
            "portal",
            "language",
            "thank_you_message",
            "is_open",
            "closes_at",
            "is_anonymous",
            "max_responses",
            "max_responses_per_hour",
            "one_response_per_browser",
        )
        labels = {"portal": _("Portal"), "language": _("Language of the survey")}
        help_texts = {
            "language": _(
                "The language of the buttons and messages on the survey's pages. "
                "Respondents can switch to another language there."
            ),
            "thank_you_message": _("Shown after a response is sent. Empty: a standard thank-you."),
            "closes_at": _("Optional. From this moment the survey accepts no more responses."),
        }
        widgets = {
            "description": forms.Textarea(attrs={"rows": 3}),
            "thank_you_message": forms.Textarea(attrs={"rows": 2}),
            "closes_at": forms.DateTimeInput(
                attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"
            ),
        }

    def __init__(self, *args: Any, account_id: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        portal_field = self.fields["portal"]
        assert isinstance(portal_field, forms.ModelChoiceField)
        portal_field.queryset = Portal.objects.of(account_id)
        portal_field.empty_label = None
        closes_at = self.fields["closes_at"]
        assert isinstance(closes_at, forms.DateTimeField)
        closes_at.input_formats = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]

    def clean_title(self) -> str:
        title = self.cleaned_data["title"].strip()
        if not title:
            raise ValidationError(_("Enter a title."), code="required")
        return title


class SectionForm(forms.ModelForm):
    class Meta:
        model = Section
        fields = ("title", "description")
        labels = {"title": _("Section title")}
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}


def _lines(text: str) -> list[str]:
    seen: list[str] = []
    for line in text.splitlines():
        label = line.strip()
        if label and label not in seen:
            seen.append(label)
    return seen


def items_as_text(question: Question | None, name: str) -> str:
    if question is None:
        return ""
    active = [item for item in validation.all_items(question, name) if not item.get("archived")]
    return "\n".join(item["label"] for item in active)


class QuestionForm(forms.Form):
    """One question with its kind's settings; list fields are one label per line.

    cleaned_data["choices"], ["rows"], ["columns"] are lists of labels: the service
    matches them to the existing stable keys.
    """

    kind = forms.ChoiceField(label=_("Type"), choices=QuestionKind.choices)
    text = forms.CharField(label=_("Question"), widget=forms.Textarea(attrs={"rows": 2}))
    help_text = forms.CharField(
        label=_("Help text"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Shown under the question."),
    )
    is_required = forms.BooleanField(label=_("Required"), required=False)
    section = forms.ModelChoiceField(
        label=_("Section"),
        queryset=Section.objects.none(),
        required=False,
        empty_label=_("(no section: first page)"),
    )
    choices = forms.CharField(
        label=_("Choices"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text=_(
            "One choice per line. Renaming a line keeps its answers; a removed choice that "
            "already has answers is archived, not deleted."
        ),
    )
    min_picks = forms.IntegerField(
        label=_("Minimum picks"), required=False, min_value=0, max_value=MAX_ITEMS
    )
    max_picks = forms.IntegerField(
        label=_("Maximum picks"), required=False, min_value=1, max_value=MAX_ITEMS
    )
    min = forms.DecimalField(label=_("Minimum value"), required=False, max_digits=18)
    max = forms.DecimalField(label=_("Maximum value"), required=False, max_digits=18)
    rows = forms.CharField(
        label=pgettext_lazy("matrix question", "Rows"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("One row (statement to rate) per line."),
    )
    columns = forms.CharField(
        label=_("Scale (columns)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("One column per line, e.g. Disagree, Neutral, Agree."),
    )

    def __init__(
        self,
        *args: Any,
        survey: Survey,
        question: Question | None = None,
        kind_locked: bool = False,
        **kwargs: Any,
    ) -> None:
        if question is not None and "initial" not in kwargs:
            options = question.options or {}
            kwargs["initial"] = {
                "kind": question.kind,
                "text": question.text,
                "help_text": question.help_text,
                "is_required": question.is_required,
                "section": question.section_id,
                "choices": items_as_text(question, "choices"),
                "rows": items_as_text(question, "rows"),
                "columns": items_as_text(question, "columns"),
                "min_picks": options.get("min_picks"),
                "max_picks": options.get("max_picks"),
                "min": options.get("min"),
                "max": options.get("max"),
            }
        super().__init__(*args, **kwargs)
        section_field = self.fields["section"]
        assert isinstance(section_field, forms.ModelChoiceField)
        section_field.queryset = survey.sections.all()
        self.question = question
        self.kind_locked = kind_locked
        if kind_locked:
            self.fields["kind"].help_text = _(
                "This question has answers, so its type can only change to a type that "
                "reads the same answers."
            )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("kind")
        for name in ("choices", "rows", "columns"):
            data[name] = _lines(data.get(name) or "")
            if len(data[name]) > MAX_ITEMS:
                self.add_error(
                    name,
                    ValidationError(
                        _("At most %(limit)d lines."), code="too_many", params={"limit": MAX_ITEMS}
                    ),
                )
        if kind in CHOICE_KINDS and len(data["choices"]) < 2:
            self.add_error("choices", _("Give at least two choices, one per line."))
        if kind == QuestionKind.MULTIPLE_CHOICE:
            low, high = data.get("min_picks"), data.get("max_picks")
            if low is not None and high is not None and low > high:
                self.add_error("max_picks", _("The maximum must not be below the minimum."))
            if high is not None and data["choices"] and high > len(data["choices"]):
                self.add_error("max_picks", _("The maximum is more than the number of choices."))
            if low is not None and data["choices"] and low > len(data["choices"]):
                self.add_error("min_picks", _("The minimum is more than the number of choices."))
        if kind == QuestionKind.NUMBER:
            low, high = data.get("min"), data.get("max")
            if low is not None and high is not None and low > high:
                self.add_error("max", _("The maximum must not be below the minimum."))
        if kind == QuestionKind.MATRIX:
            if not data["rows"]:
                self.add_error("rows", _("Give at least one row."))
            if len(data["columns"]) < 2:
                self.add_error("columns", _("Give at least two columns."))
        return data
