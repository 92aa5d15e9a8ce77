"""The survey's pages kept per process (public/definitions.py, issue 11): every change made in
the builder shows at the next visit, and the blank page drawn once is each respondent's own."""

from __future__ import annotations

import re

from django.test import Client, override_settings
from django.urls import reverse

from kizuna.survey.builder import services as builder
from kizuna.survey.models import Answer, Response, Survey
from kizuna.survey.tests.respondent import add_question, post, two_page_survey


def url_of(survey: Survey) -> str:
    return reverse("survey_public:survey", args=[survey.public_id])


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, name
    return found.group(1)


def test_a_question_edited_in_the_builder_shows_at_the_next_visit(survey: Survey) -> None:
    question = add_question(survey, "short_text", "Your name?", is_required=True)
    before = Client().get(url_of(survey)).content.decode()

    builder.save_question(
        survey=survey,
        question=question,
        data={"kind": "short_text", "text": "Your full name?", "is_required": True},
    )
    after = Client().get(url_of(survey)).content.decode()

    assert "Your name?" in before
    assert "Your full name?" in after
    assert "Your name?" not in after


def test_a_choice_added_in_the_builder_is_accepted_at_once(
    survey: Survey, anonymous_client: Client
) -> None:
    question = add_question(survey, "single_choice", "Fruit?", is_required=True)
    anonymous_client.get(url_of(survey))  # the pages are now kept in this process

    builder.save_question(
        survey=survey,
        question=question,
        data={
            "kind": "single_choice",
            "text": "Fruit?",
            "is_required": True,
            "choices": ["Apple", "Banana", "Cherry", "Fig"],
        },
    )
    question.refresh_from_db()
    fig = next(c["key"] for c in question.options["choices"] if c["label"] == "Fig")
    stored = post(anonymous_client, url_of(survey), {f"q{question.pk}": fig})

    assert stored.status_code == 302
    assert Answer.objects.get().value == fig


def test_a_question_deleted_in_the_builder_is_no_longer_asked_nor_stored(
    survey: Survey, anonymous_client: Client
) -> None:
    kept = add_question(survey, "short_text", "Kept?", is_required=True)
    dropped = add_question(survey, "short_text", "Dropped?", is_required=True)
    anonymous_client.get(url_of(survey))

    builder.delete_question(question=dropped)
    page = anonymous_client.get(url_of(survey)).content.decode()
    stored = post(anonymous_client, url_of(survey), {f"q{kept.pk}": "yes"})

    assert "Dropped?" not in page
    assert stored.status_code == 302
    assert list(Answer.objects.values_list("question_id", "value")) == [(kept.pk, "yes")]


def test_a_section_added_in_the_builder_makes_a_second_page_at_once(survey: Survey) -> None:
    add_question(survey, "short_text", "First?")
    Client().get(url_of(survey))

    builder.add_section(survey=survey, title="More about you", description="")
    page = Client().get(url_of(survey)).content.decode()

    assert "Page 1 of 2" in page


def test_the_survey_title_changed_in_its_settings_shows_at_the_next_visit(
    survey: Survey,
) -> None:
    add_question(survey, "short_text", "Name?")
    Client().get(url_of(survey))

    Survey.objects.filter(pk=survey.pk).update(title="Renamed survey")
    builder.touch_survey(survey)
    page = Client().get(url_of(survey)).content.decode()

    assert "<h1>Renamed survey</h1>" in page


@override_settings(KIZUNA_SURVEY_MIN_SECONDS=0)  # the forms are sent at once
def test_each_new_respondent_gets_a_csrf_token_and_start_of_their_own(survey: Survey) -> None:
    question = add_question(survey, "short_text", "Name?", is_required=True)
    first, second = Client(enforce_csrf_checks=True), Client(enforce_csrf_checks=True)

    first_page = first.get(url_of(survey)).content.decode()
    second_page = second.get(url_of(survey)).content.decode()
    answers = {"page": "1", "action": "submit", f"q{question.pk}": "Ada"}
    stored = [
        client.post(
            url_of(survey),
            {
                **answers,
                "csrfmiddlewaretoken": hidden(page, "csrfmiddlewaretoken"),
                "started": hidden(page, "started"),
            },
        ).status_code
        for client, page in ((first, first_page), (second, second_page))
    ]

    assert hidden(first_page, "csrfmiddlewaretoken") != hidden(second_page, "csrfmiddlewaretoken")
    assert f'<form method="post" action="{url_of(survey)}" novalidate>' in first_page
    assert stored == [302, 302]
    assert Response.objects.count() == 2


def test_the_blank_page_names_the_requested_path_for_the_language_switch(
    survey: Survey,
) -> None:
    two_page_survey(survey)

    page = Client().get(url_of(survey) + "?page=2").content.decode()

    assert hidden(page, "next") == url_of(survey) + "?page=2"
    assert hidden(page, "page") == "2"


def test_the_blank_page_is_drawn_in_each_language(survey: Survey) -> None:
    add_question(survey, "short_text", "Name?", is_required=True)
    english = Client().get(url_of(survey)).content.decode()
    japanese_client = Client()
    japanese_client.cookies["kizuna_language"] = "ja"

    japanese = japanese_client.get(url_of(survey)).content.decode()

    assert "(required)" in english and "送信" not in english
    assert "送信" in japanese and "(required)" not in japanese


def test_what_a_respondent_typed_is_never_shown_to_the_next_one(survey: Survey) -> None:
    name, _rating = two_page_survey(survey)
    typing = Client()
    typing.post(
        url_of(survey),
        {"page": "1", "action": "next", f"q{name.pk}": "Ada Lovelace", "started": "x"},
    )

    own_page = typing.get(url_of(survey) + "?page=1").content.decode()
    next_page = Client().get(url_of(survey) + "?page=1").content.decode()

    assert 'value="Ada Lovelace"' in own_page
    assert "Ada Lovelace" not in next_page
