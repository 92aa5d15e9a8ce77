"""ResponseProgress: a respondent's answers page by page, kept in the session until submitted."""

from __future__ import annotations

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.http import QueryDict

from kizuna.survey.models import Survey
from kizuna.survey.public.progress import InvalidPage, ResponseProgress
from kizuna.survey.tests.respondent import two_page_survey


def _typed(**values: str) -> QueryDict:
    data = QueryDict(mutable=True)
    for name, value in values.items():
        data[name] = value
    return data


def test_answers_of_each_page_are_kept_until_forgotten(survey: Survey, db):
    name, rating = two_page_survey(survey)
    session = SessionStore()
    progress = ResponseProgress(session, survey=survey, invitation=None)
    assert (progress.page_count, progress.page_number("7"), progress.page_number("x")) == (2, 2, 1)

    progress.take(_typed(**{f"q{name.pk}": "Dan"}), number=1)
    assert progress.errors_on(1) == {}
    progress.keep()
    later = ResponseProgress(session, survey=survey, invitation=None)
    later.take(_typed(**{f"q{rating.pk}": "4"}), number=2)

    assert later.values() == {name: "Dan", rating: 4}
    assert later.started == progress.started
    assert later.started_at is not None
    later.forget()
    assert ResponseProgress(session, survey=survey, invitation=None).answers == {}


def test_the_first_page_in_error_is_named_when_every_page_is_checked(survey: Survey, db):
    name, rating = two_page_survey(survey)
    progress = ResponseProgress(SessionStore(), survey=survey, invitation=None)
    progress.take(_typed(**{f"q{rating.pk}": "4"}), number=2)

    with pytest.raises(InvalidPage) as raised:
        progress.values()

    assert raised.value.number == 1
    assert list(raised.value.errors) == [str(name.pk)]


def test_a_start_time_that_we_did_not_sign_is_ignored(survey: Survey, db):
    two_page_survey(survey)
    progress = ResponseProgress(SessionStore(), survey=survey, invitation=None)
    signed = progress.started

    progress.take(_typed(started="2020-01-01T00:00:00+00:00"), number=1)

    assert progress.started == signed
