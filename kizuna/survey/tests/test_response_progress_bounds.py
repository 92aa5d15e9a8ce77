"""Issue 9.4: what respondents keep between pages is bounded, counted and short-lived.

"Back" and "Next" keep the answers so far in the session: an answer larger than submit
accepts is never kept, nor a page that would take the whole progress past its cap; page
moves count in a rate limit per address; an anonymous respondent's progress lasts a day,
and a one-page survey writes no session at all.
"""

from __future__ import annotations

import datetime

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from kizuna.config import Rate
from kizuna.survey.models import Question, Response, Section, Survey
from kizuna.survey.public.progress import ANONYMOUS_PROGRESS_SECONDS, PROGRESS_PREFIX
from kizuna.survey.tests.respondent import add_question, one_page_survey, post
from kizuna.survey.validation import LONG_TEXT_MAX_LENGTH
from kizuna.work.workers import forget_expired_sessions

pytestmark = pytest.mark.django_db


def _survey_with_texts(survey: Survey, texts: int) -> tuple[Question, list[Question]]:
    """Page 1 asks a name; page 2 asks `texts` long texts."""
    first = Section.objects.create(survey=survey, title="About you", position=0)
    second = Section.objects.create(survey=survey, title="Tell us more", position=1)
    name = add_question(survey, "short_text", "Your name", section=first, is_required=True)
    longs = [add_question(survey, "long_text", f"Story {n}", section=second) for n in range(texts)]
    return name, longs


def _url(survey: Survey) -> str:
    return reverse("survey_public:survey", args=[survey.public_id])


def _to_page_two(client: Client, survey: Survey, name: Question) -> None:
    moved = client.post(_url(survey), {"page": "1", "action": "next", f"q{name.pk}": "Dan"})
    assert moved.status_code == 302


def _kept_answers(client: Client, survey: Survey) -> dict[str, object]:
    session = Session.objects.get(session_key=client.session.session_key).get_decoded()
    return session[f"{PROGRESS_PREFIX}:{survey.pk}:anon"]["answers"]


def test_9_4_back_never_keeps_an_answer_longer_than_submit_accepts(
    survey: Survey, anonymous_client: Client
) -> None:
    name, [story] = _survey_with_texts(survey, 1)
    _to_page_two(anonymous_client, survey, name)
    huge = "x" * 2_000_000

    back = anonymous_client.post(
        _url(survey), {"page": "2", "action": "back", f"q{story.pk}": huge}
    )

    assert back.status_code == 200
    assert "Write at most 10000 characters (this answer has 2000000)." in back.content.decode()
    assert _kept_answers(anonymous_client, survey) == {str(name.pk): ["Dan"]}
    row = Session.objects.get(session_key=anonymous_client.session.session_key)
    assert len(row.session_data) < 2_000


def test_9_4_back_keeps_an_answer_within_the_limit(
    survey: Survey, anonymous_client: Client
) -> None:
    name, [story] = _survey_with_texts(survey, 1)
    _to_page_two(anonymous_client, survey, name)
    text = "y" * LONG_TEXT_MAX_LENGTH

    back = anonymous_client.post(
        _url(survey), {"page": "2", "action": "back", f"q{story.pk}": text}
    )

    assert back.status_code == 302
    assert back["Location"] == f"{_url(survey)}?page=1"
    assert _kept_answers(anonymous_client, survey) == {str(name.pk): ["Dan"], str(story.pk): [text]}


def test_9_4_the_whole_progress_has_a_cap_and_a_page_past_it_is_not_kept(
    survey: Survey, anonymous_client: Client
) -> None:
    name, stories = _survey_with_texts(survey, 6)
    _to_page_two(anonymous_client, survey, name)
    typed = {f"q{story.pk}": "z" * LONG_TEXT_MAX_LENGTH for story in stories}

    back = anonymous_client.post(_url(survey), {"page": "2", "action": "back", **typed})

    assert back.status_code == 200
    assert "too long to keep together" in back.content.decode()
    assert back.content.decode().count("z" * LONG_TEXT_MAX_LENGTH) == 6  # nothing typed is lost
    assert _kept_answers(anonymous_client, survey) == {str(name.pk): ["Dan"]}


def test_9_4_a_matrix_or_choice_with_more_values_than_it_accepts_is_not_kept(
    survey: Survey, anonymous_client: Client
) -> None:
    name, _stories = _survey_with_texts(survey, 0)
    choice = add_question(survey, "single_choice", section=Section.objects.get(position=1))
    _to_page_two(anonymous_client, survey, name)

    back = anonymous_client.post(
        _url(survey), {"page": "2", "action": "back", f"q{choice.pk}": ["a"] * 500}
    )

    assert back.status_code == 200
    assert "Give one answer only." in back.content.decode()
    assert _kept_answers(anonymous_client, survey) == {str(name.pk): ["Dan"]}


@override_settings(KIZUNA_SURVEY_PAGE_RATE=Rate(3, 3600))
def test_9_4_page_moves_count_in_a_rate_limit_per_address(
    survey: Survey, anonymous_client: Client
) -> None:
    name, [story] = _survey_with_texts(survey, 1)
    _to_page_two(anonymous_client, survey, name)
    backs = [
        anonymous_client.post(
            _url(survey), {"page": "2", "action": "back", f"q{story.pk}": f"draft {n}"}
        ).status_code
        for n in (1, 2)
    ]

    refused = anonymous_client.post(
        _url(survey), {"page": "2", "action": "back", f"q{story.pk}": "draft 3"}
    )
    elsewhere = Client().post(
        _url(survey), {"page": "1", "action": "next", f"q{name.pk}": "Eve"}, REMOTE_ADDR="192.0.2.9"
    )

    assert backs == [302, 302]
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 1200
    page = refused.content.decode()
    assert "Too many answers were sent from your network in a short time." in page
    assert "draft 3" in page  # still on screen
    assert _kept_answers(anonymous_client, survey)[str(story.pk)] == ["draft 2"]
    assert elsewhere.status_code == 302


@override_settings(KIZUNA_SURVEY_PAGE_RATE=None)
def test_9_4_page_moves_switched_off_are_never_counted(
    survey: Survey, anonymous_client: Client
) -> None:
    name, [story] = _survey_with_texts(survey, 1)
    _to_page_two(anonymous_client, survey, name)
    backs = [
        anonymous_client.post(
            _url(survey), {"page": "2", "action": "back", f"q{story.pk}": f"draft {n}"}
        ).status_code
        for n in range(5)
    ]

    assert backs == [302] * 5
    assert _kept_answers(anonymous_client, survey)[str(story.pk)] == ["draft 4"]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM kizuna_cache WHERE cache_key LIKE %s",
            ["%ratelimit-bucket:survey-page:%"],
        )
        assert cursor.fetchone()[0] == 0


def test_9_4_an_anonymous_respondents_progress_lasts_a_day(
    survey: Survey, anonymous_client: Client
) -> None:
    name, _stories = _survey_with_texts(survey, 1)
    before = timezone.now()

    _to_page_two(anonymous_client, survey, name)

    row = Session.objects.get(session_key=anonymous_client.session.session_key)
    lifetime = datetime.timedelta(seconds=ANONYMOUS_PROGRESS_SECONDS)
    assert before + lifetime <= row.expire_date <= timezone.now() + lifetime


def test_9_4_a_signed_in_persons_session_keeps_its_own_lifetime(
    survey: Survey, ada_client: Client
) -> None:
    name, _stories = _survey_with_texts(survey, 1)

    _to_page_two(ada_client, survey, name)

    row = Session.objects.get(session_key=ada_client.session.session_key)
    assert row.expire_date > timezone.now() + datetime.timedelta(days=13)


def test_9_4_a_one_page_survey_writes_no_session(survey: Survey, anonymous_client: Client) -> None:
    question = one_page_survey(survey, "short_text")

    shown = anonymous_client.get(_url(survey))
    sent = post(anonymous_client, _url(survey), {f"q{question.pk}": "fine"})

    assert (shown.status_code, sent.status_code) == (200, 302)
    assert Response.objects.count() == 1
    assert Session.objects.count() == 0


def test_9_4_the_worker_deletes_expired_sessions(survey: Survey, anonymous_client: Client) -> None:
    name, _stories = _survey_with_texts(survey, 1)
    _to_page_two(anonymous_client, survey, name)
    _to_page_two(Client(), survey, name)
    expired = Session.objects.order_by("pk").first()
    assert expired is not None
    Session.objects.filter(pk=expired.pk).update(expire_date=timezone.now())

    forget_expired_sessions()

    assert Session.objects.count() == 1
    assert not Session.objects.filter(pk=expired.pk).exists()
