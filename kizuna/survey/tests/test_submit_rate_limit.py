"""Public submissions are rate-limited per client address, with a clear 429 page."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse

from kizuna.config import Rate
from kizuna.survey.models import Question, Response, Survey
from kizuna.survey.tests.respondent import one_page_survey, post


@pytest.fixture
def question(survey: Survey) -> Question:
    return one_page_survey(survey, "short_text")


@override_settings(KIZUNA_SURVEY_SUBMIT_RATE=Rate(2, 600))
def test_the_third_submission_from_one_address_gets_429_and_keeps_the_answers(
    survey: Survey, question: Question, anonymous_client: Client
) -> None:
    url = reverse("survey_public:survey", args=[survey.public_id])

    statuses = [
        post(anonymous_client, url, {f"q{question.pk}": f"answer {n}"}).status_code for n in (1, 2)
    ]
    refused = post(anonymous_client, url, {f"q{question.pk}": "answer 3"})
    later = anonymous_client.get(url)

    assert statuses == [302, 302]
    assert refused.status_code == 429
    assert "Too many answers were sent from your network" in refused.content.decode()
    assert Response.objects.count() == 2
    assert 'value="answer 3"' in later.content.decode()


@override_settings(KIZUNA_SURVEY_SUBMIT_RATE=Rate(1, 600))
def test_other_addresses_are_counted_separately(
    survey: Survey, question: Question, anonymous_client: Client
) -> None:
    url = reverse("survey_public:survey", args=[survey.public_id])

    first = post(anonymous_client, url, {f"q{question.pk}": "a"}, REMOTE_ADDR="192.0.2.1")
    second = post(Client(), url, {f"q{question.pk}": "b"}, REMOTE_ADDR="192.0.2.2")
    third = post(Client(), url, {f"q{question.pk}": "c"}, REMOTE_ADDR="192.0.2.1")

    assert [first.status_code, second.status_code, third.status_code] == [302, 302, 429]
    assert Response.objects.count() == 2


@override_settings(KIZUNA_SURVEY_SUBMIT_RATE=Rate(1, 600))
def test_invalid_forms_and_page_moves_do_not_count(
    survey: Survey, question: Question, anonymous_client: Client
) -> None:
    url = reverse("survey_public:survey", args=[survey.public_id])
    question.is_required = True
    question.save(update_fields=["is_required"])

    invalid = post(anonymous_client, url, {f"q{question.pk}": ""})
    valid = post(anonymous_client, url, {f"q{question.pk}": "ok"})

    assert [invalid.status_code, valid.status_code] == [200, 302]


@override_settings(KIZUNA_SURVEY_SUBMIT_RATE=None)
def test_12_the_limit_switched_off_counts_nothing_and_refuses_nobody(
    survey: Survey, question: Question, anonymous_client: Client
) -> None:
    url = reverse("survey_public:survey", args=[survey.public_id])

    statuses = [
        post(anonymous_client, url, {f"q{question.pk}": f"answer {n}"}).status_code
        for n in range(5)
    ]

    assert statuses == [302] * 5
    assert Response.objects.count() == 5
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM kizuna_cache WHERE cache_key LIKE %s",
            ["%ratelimit-bucket:survey-submit:%"],
        )
        assert cursor.fetchone()[0] == 0
