"""Prepared queries and plain INSERTs (lib/prepared.py) give what the ORM gives, on Survey rows
(lib tests may not import an app)."""

from __future__ import annotations

import datetime
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from kizuna.lib.prepared import PreparedQuery, insert
from kizuna.survey.models import Answer, Portal, Question, Response, Survey

pytestmark = pytest.mark.django_db

SURVEY_OF_PUBLIC_ID: PreparedQuery[Survey] = PreparedQuery(
    lambda public_id: Survey.objects.select_related("portal__account").filter(public_id=public_id)
)


@pytest.fixture
def survey(portal: Portal) -> Survey:
    return Survey.objects.create(portal=portal, title="Prepared", closes_at=timezone.now())


def test_a_prepared_lookup_builds_the_object_and_its_relations_as_the_orm_does(
    survey: Survey,
) -> None:
    found = SURVEY_OF_PUBLIC_ID.get(survey.public_id)

    with CaptureQueriesContext(connection) as queries:
        assert found is not None
        assert (found.pk, found.title, found.closes_at, found.is_open) == (
            survey.pk,
            "Prepared",
            survey.closes_at,
            True,
        )
        assert found.portal.account.name == survey.portal.account.name
    assert len(queries) == 0  # the portal and account came with it


def test_a_prepared_lookup_reads_the_database_every_time(survey: Survey) -> None:
    SURVEY_OF_PUBLIC_ID.get(survey.public_id)

    Survey.objects.filter(pk=survey.pk).update(title="Renamed", is_open=False)
    found = SURVEY_OF_PUBLIC_ID.get(survey.public_id)

    assert found is not None and (found.title, found.is_open) == ("Renamed", False)
    assert SURVEY_OF_PUBLIC_ID.get("no-such-survey") is None


def test_all_keeps_the_querysets_order_and_its_other_parameters(survey: Survey) -> None:
    later = [
        Question.objects.create(survey=survey, kind="short_text", text=text, position=position)
        for text, position in (("b", 2), ("a", 1), ("archived", 0))
    ]
    Question.objects.filter(pk=later[2].pk).update(is_archived=True)
    asked = PreparedQuery(
        lambda survey_id: Question.objects.filter(survey_id=survey_id, is_archived=False).order_by(
            "position"
        ),
        placeholder=-1_234_567,
    )

    assert [q.text for q in asked.all(survey.pk)] == ["a", "b"]
    assert asked.all(survey.pk + 1000) == []


def test_a_queryset_that_repeats_the_value_goes_through_the_orm(survey: Survey) -> None:
    twice = PreparedQuery(
        lambda text: Survey.objects.filter(title=text, description=text), placeholder="same"
    )
    Survey.objects.filter(pk=survey.pk).update(description="Prepared")

    assert twice.get("Prepared") == survey


def test_insert_stores_what_the_orm_would_store(survey: Survey) -> None:
    question = Question.objects.create(survey=survey, kind="multiple_choice", text="Q")
    submitted = timezone.now().replace(microsecond=123456)
    response = Response(
        survey=survey,
        language="ja",
        started_at=submitted - datetime.timedelta(minutes=1),
        submitted_at=submitted,
    )
    answers = [Answer(response=response, question=question, value=["a", "c"])]

    insert([response])
    insert(answers)

    stored = Response.objects.get()
    assert isinstance(stored.pk, uuid.UUID) and stored.pk == response.pk
    assert (stored.language, stored.started_at, stored.submitted_at, stored.invitation_id) == (
        "ja",
        submitted - datetime.timedelta(minutes=1),
        submitted,
        None,
    )
    assert list(Answer.objects.values_list("response_id", "question_id", "value")) == [
        (response.pk, question.pk, ["a", "c"])
    ]
    assert response._state.adding is False
