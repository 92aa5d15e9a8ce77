"""Every multi-row write of the survey builder: surveys, their sections and questions.

No write makes a stored answer unreadable: a question with answers keeps its item
keys, changes only to a compatible kind, and is archived rather than deleted.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone
from django.utils.translation import gettext

from kizuna.identity.models import User
from kizuna.survey.audit import services as audit
from kizuna.survey.audit.models import AuditAction
from kizuna.survey.models import Answer, Question, QuestionKind, Response, Section, Survey
from kizuna.survey.services import SurveyRuleError

# Kinds whose stored answers read the same, so a question with answers may switch between them.
COMPATIBLE_KINDS = (
    {QuestionKind.SINGLE_CHOICE, QuestionKind.DROPDOWN},
    {QuestionKind.SHORT_TEXT, QuestionKind.LONG_TEXT},
)


def kinds_compatible(old: str, new: str) -> bool:
    return old == new or any(old in group and new in group for group in COMPATIBLE_KINDS)


def new_item_key() -> str:
    return secrets.token_hex(4)


@dataclass(frozen=True)
class UsedKeys:
    """The choice, row and column keys that stored answers of one question refer to."""

    choices: set[str]
    rows: set[str]
    columns: set[str]


def used_keys(question: Question) -> UsedKeys:
    choices: set[str] = set()
    rows: set[str] = set()
    columns: set[str] = set()
    for value in (
        Answer.objects.filter(question=question).values_list("value", flat=True).iterator()
    ):
        if isinstance(value, str):
            choices.add(value)
        elif isinstance(value, list):
            choices.update(str(v) for v in value)
        elif isinstance(value, dict):
            rows.update(value)
            columns.update(str(v) for v in value.values())
    return UsedKeys(choices=choices, rows=rows, columns=columns)


@dataclass(frozen=True)
class MergedItems:
    items: list[dict[str, Any]]
    archived_labels: list[str]


def merge_items(existing: list[dict[str, Any]], labels: list[str], used: set[str]) -> MergedItems:
    """New items for `labels`, keeping keys stable.

    A label equal to an existing item's keeps its key (an archived one comes back);
    a changed label at the same place as an unmatched item is a rename and keeps
    that key. Items left over are archived when answers use them, dropped otherwise.
    """
    by_label = {item["label"]: item for item in existing}
    active = [item for item in existing if not item.get("archived")]
    matched: set[str] = {by_label[label]["key"] for label in labels if label in by_label}
    result: list[dict[str, Any]] = []
    for index, label in enumerate(labels):
        if label in by_label:
            key = by_label[label]["key"]
        elif index < len(active) and active[index]["key"] not in matched:
            key = active[index]["key"]
            matched.add(key)
        else:
            key = new_item_key()
        result.append({"key": key, "label": label})
    kept = {item["key"] for item in result}
    archived_labels: list[str] = []
    for item in existing:
        if item["key"] in kept or item["key"] not in used:
            continue
        result.append({"key": item["key"], "label": item["label"], "archived": True})
        if not item.get("archived"):
            archived_labels.append(item["label"])
    return MergedItems(items=result, archived_labels=archived_labels)


@dataclass(frozen=True)
class QuestionSaved:
    question: Question
    archived_labels: list[str]


def _number(value: Decimal | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


@transaction.atomic
def save_question(
    *, survey: Survey, question: Question | None, data: dict[str, Any]
) -> QuestionSaved:
    """Create or update a question from QuestionForm data, never making answers unreadable."""
    kind = data["kind"]
    if question is None:
        question = Question(
            survey=survey, position=next_question_position(survey), kind=kind, options={}
        )
        used = UsedKeys(set(), set(), set())
    else:
        question = Question.objects.select_for_update().get(pk=question.pk, survey=survey)
        has_answers = Answer.objects.filter(question=question).exists()
        if has_answers and not kinds_compatible(question.kind, kind):
            raise SurveyRuleError(
                gettext(
                    "This question already has answers, so its type cannot change to %(kind)s: "
                    "add a new question instead (you can archive this one)."
                )
                % {"kind": QuestionKind(kind).label}
            )
        used = used_keys(question) if has_answers else UsedKeys(set(), set(), set())
    old = question.options or {}
    options: dict[str, Any] = {}
    archived: list[str] = []
    if kind in {QuestionKind.SINGLE_CHOICE, QuestionKind.MULTIPLE_CHOICE, QuestionKind.DROPDOWN}:
        merged = merge_items(list(old.get("choices") or []), data["choices"], used.choices)
        options["choices"] = merged.items
        archived += merged.archived_labels
    if kind == QuestionKind.MULTIPLE_CHOICE:
        options["min_picks"] = data.get("min_picks")
        options["max_picks"] = data.get("max_picks")
    if kind == QuestionKind.NUMBER:
        options["min"] = _number(data.get("min"))
        options["max"] = _number(data.get("max"))
    if kind == QuestionKind.MATRIX:
        rows = merge_items(list(old.get("rows") or []), data["rows"], used.rows)
        columns = merge_items(list(old.get("columns") or []), data["columns"], used.columns)
        options["rows"] = rows.items
        options["columns"] = columns.items
        archived += rows.archived_labels + columns.archived_labels
    section = data.get("section")
    if section is not None and section.survey_id != survey.pk:
        raise SurveyRuleError(gettext("That section belongs to another survey."))
    if question.pk is not None and section != question.section:
        # Moving to another page puts the question at that page's end.
        question.position = next_question_position(survey)
    question.kind = kind
    question.text = data["text"].strip()
    question.help_text = (data.get("help_text") or "").strip()
    question.is_required = bool(data.get("is_required"))
    question.section = section
    question.options = {key: value for key, value in options.items() if value is not None}
    question.save()
    touch_survey(survey)
    return QuestionSaved(question=question, archived_labels=archived)


def touch_survey(survey: Survey) -> None:
    Survey.objects.filter(pk=survey.pk).update(modified_at=timezone.now())


def set_survey_open(*, survey: Survey, is_open: bool) -> None:
    """Open or close `survey` for responses; reopening it past its close date clears that date."""
    survey.is_open = is_open
    if is_open and survey.closes_at and survey.closes_at <= timezone.now():
        survey.closes_at = None
    survey.modified_at = timezone.now()
    survey.save(update_fields=["is_open", "closes_at", "modified_at"])


def next_question_position(survey: Survey) -> int:
    top = survey.questions.aggregate(top=Max("position"))["top"]
    return 0 if top is None else top + 1


@transaction.atomic
def delete_question(*, question: Question) -> bool:
    """Delete a question, or archive it when it has answers (True then): results keep it."""
    if Answer.objects.filter(question=question).exists():
        question.is_archived = True
        question.save(update_fields=["is_archived"])
        touch_survey(question.survey)
        return True
    question.delete()
    touch_survey(question.survey)
    return False


@transaction.atomic
def restore_question(*, question: Question) -> None:
    question.is_archived = False
    question.position = next_question_position(question.survey)
    question.save(update_fields=["is_archived", "position"])
    touch_survey(question.survey)


@transaction.atomic
def move_question(*, question: Question, offset: int) -> None:
    """Move a question up (-1) or down (+1) within its page, renumbering that page."""
    page = Question.objects.select_for_update().filter(
        survey_id=question.survey_id, is_archived=False
    )
    if question.section_id is None:
        page = page.filter(section__isnull=True)
    else:
        page = page.filter(section_id=question.section_id)
    siblings = list(page.order_by("position", "id"))
    index = next((i for i, q in enumerate(siblings) if q.pk == question.pk), None)
    if index is None:
        return
    target = max(0, min(len(siblings) - 1, index + offset))
    siblings.insert(target, siblings.pop(index))
    _renumber(siblings)
    touch_survey(question.survey)


def _renumber(rows: list[Any]) -> None:
    base = min((row.position for row in rows), default=0)
    changed = []
    for offset, row in enumerate(rows):
        if row.position != base + offset:
            row.position = base + offset
            changed.append(row)
    if changed:
        type(changed[0]).objects.bulk_update(changed, ["position"])


@transaction.atomic
def add_section(*, survey: Survey, title: str, description: str) -> Section:
    top = survey.sections.aggregate(top=Max("position"))["top"]
    section = Section.objects.create(
        survey=survey,
        title=title.strip(),
        description=description.strip(),
        position=0 if top is None else top + 1,
    )
    touch_survey(survey)
    return section


@transaction.atomic
def move_section(*, section: Section, offset: int) -> None:
    sections = list(
        Section.objects.select_for_update()
        .filter(survey_id=section.survey_id)
        .order_by("position", "id")
    )
    index = next(i for i, s in enumerate(sections) if s.pk == section.pk)
    target = max(0, min(len(sections) - 1, index + offset))
    sections.insert(target, sections.pop(index))
    for position, row in enumerate(sections):
        row.position = position
    Section.objects.bulk_update(sections, ["position"])
    touch_survey(section.survey)


@transaction.atomic
def delete_section(*, section: Section) -> int:
    """Delete a section; its questions move to the first page (returns how many moved)."""
    survey = section.survey
    questions = list(section.questions.order_by("position", "id"))
    start = next_question_position(survey)
    for offset, question in enumerate(questions):
        question.section = None
        question.position = start + offset
    Question.objects.bulk_update(questions, ["section", "position"])
    section.delete()
    touch_survey(survey)
    return len(questions)


@transaction.atomic
def delete_survey(*, survey: Survey, by: User) -> None:
    """Delete a survey that has no responses; one with responses is closed, not deleted."""
    if Response.objects.filter(survey=survey).exists():
        raise SurveyRuleError(
            gettext(
                "This survey has responses, so it cannot be deleted: close it instead, and its "
                "responses stay readable."
            )
        )
    audit.record(
        account=survey.portal.account,
        actor=by,
        action=AuditAction.SURVEY_DELETED,
        target=survey,
    )
    Answer.objects.filter(question__survey=survey).delete()
    survey.delete()


@transaction.atomic
def copy_question(*, question: Question) -> Question:
    """A copy of `question` right after it on the same page, with no answers of its own."""
    later = Question.objects.filter(survey_id=question.survey_id, position__gt=question.position)
    later.update(position=F("position") + 1)
    copy = Question.objects.create(
        survey_id=question.survey_id,
        section_id=question.section_id,
        position=question.position + 1,
        kind=question.kind,
        text=question.text,
        help_text=question.help_text,
        is_required=question.is_required,
        options=_active_options(question.options or {}),
    )
    touch_survey(question.survey)
    return copy


def _active_options(options: dict[str, Any]) -> dict[str, Any]:
    """Options without archived items: those exist only for answers the copy does not have."""
    return {
        name: [item for item in value if not item.get("archived")]
        if name in {"choices", "rows", "columns"} and isinstance(value, list)
        else value
        for name, value in options.items()
    }


@transaction.atomic
def copy_survey(*, survey: Survey, by: User, title: str) -> Survey:
    """A closed copy of `survey` in the same portal: settings, sections, current questions."""
    copy = Survey.objects.create(
        portal_id=survey.portal_id,
        title=title,
        description=survey.description,
        language=survey.language,
        thank_you_message=survey.thank_you_message,
        is_open=False,
        is_anonymous=survey.is_anonymous,
        max_responses=survey.max_responses,
        max_responses_per_hour=survey.max_responses_per_hour,
        one_response_per_browser=survey.one_response_per_browser,
        created_by=by,
    )
    sections = {
        section.pk: Section.objects.create(
            survey=copy,
            title=section.title,
            description=section.description,
            position=section.position,
        )
        for section in survey.sections.all()
    }
    Question.objects.bulk_create(
        Question(
            survey=copy,
            section=sections.get(question.section_id) if question.section_id else None,
            position=question.position,
            kind=question.kind,
            text=question.text,
            help_text=question.help_text,
            is_required=question.is_required,
            options=_active_options(question.options or {}),
        )
        for question in survey.questions.filter(is_archived=False)
    )
    return copy
