"""A survey's pages and questions, read once per server process and kept until it changes.

Every public request reads the survey's own row (is it open, full, ...), never cached. Its
`modified_at` is stamped by every change of its questions and sections, in the change's
transaction (builder.services.touch_survey), so the pages kept here are those of the same
`modified_at` or are read again: each process finds a change at its next request, with no
message between processes. What is kept is read-only: the Question and Section rows, and
the HTML of a page's questions drawn blank (a new respondent's page) in each language.
"""

from __future__ import annotations

import datetime
import threading
from dataclasses import dataclass, field

from kizuna.survey.models import Question, Section, Survey

# Surveys kept per process; past it the whole cache starts again (surveys answered at once are
# few, and one read of a survey's pages costs two queries).
MAX_SURVEYS = 500


@dataclass
class Page:
    """One page of the form: a section (or the questions outside any section)."""

    section: Section | None
    questions: list[Question]


@dataclass
class Definition:
    """The pages of one survey as of its `modified_at`, and their blank HTML once drawn:
    each page's questions, and whole pages with markers for each request's own values, by
    language and page number."""

    modified_at: datetime.datetime
    pages: list[Page]
    blank_html: dict[tuple[str, int], str] = field(default_factory=dict)
    blank_pages: dict[tuple[str, int], str] = field(default_factory=dict)


_lock = threading.Lock()
_definitions: dict[int, Definition] = {}


def read_pages(survey: Survey) -> list[Page]:
    """The pages of a survey in order, from the database; archived questions are not asked.

    The rows are read by the survey's id, not through `survey`, so that what is kept holds
    no reference to the Survey object of one request.
    """
    questions = list(
        Question.objects.filter(survey_id=survey.pk, is_archived=False).order_by("position", "id")
    )
    sections = list(Section.objects.filter(survey_id=survey.pk).order_by("position", "id"))
    by_section: dict[int | None, list[Question]] = {}
    section_ids = {section.pk for section in sections}
    for question in questions:
        key = question.section_id if question.section_id in section_ids else None
        by_section.setdefault(key, []).append(question)
    pages = []
    if None in by_section:
        pages.append(Page(section=None, questions=by_section[None]))
    for section in sections:
        if by_section.get(section.pk) or section.title or section.description:
            pages.append(Page(section=section, questions=by_section.get(section.pk, [])))
    return pages or [Page(section=None, questions=[])]


def definition_of(survey: Survey) -> Definition:
    """The pages of `survey` as of its `modified_at`: kept in this process, or read now."""
    kept = _definitions.get(survey.pk)
    if kept is not None and kept.modified_at == survey.modified_at:
        return kept
    definition = Definition(modified_at=survey.modified_at, pages=read_pages(survey))
    with _lock:
        if len(_definitions) >= MAX_SURVEYS:
            _definitions.clear()
        _definitions[survey.pk] = definition
    return definition


def forget_all() -> None:
    """Empty this process's cache (tests that change rows behind the builder's back)."""
    with _lock:
        _definitions.clear()
