"""The anonymous link /s/<public id>/: every question kind through the public form."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from django.core.exceptions import ValidationError
from django.http import QueryDict
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from kizuna.survey.models import Answer, Invitation, Question, Response, Survey
from kizuna.survey.public.progress import raw_answer
from kizuna.survey.tests.respondent import (
    add_question,
    one_page_survey,
    opened_ago,
    post,
    two_page_survey,
)
from kizuna.survey.validation import active_choices, active_columns, validate_answer


def url_of(survey: Survey) -> str:
    return reverse("survey_public:survey", args=[survey.public_id])


# (kind, options, what the respondent sends, the value stored)
GOOD = [
    ("single_choice", {}, {"x": ["b"]}, "b"),
    ("dropdown", {}, {"x": ["c"]}, "c"),
    ("multiple_choice", {}, {"x": ["c", "a"]}, ["a", "c"]),
    ("short_text", {}, {"x": ["  Hello  "]}, "Hello"),
    ("long_text", {}, {"x": ["line one\nline two"]}, "line one\nline two"),
    ("number", {"min": 0, "max": 100}, {"x": ["42.5"]}, 42.5),
    ("number", {}, {"x": ["1,000"]}, 1000),
    ("email", {}, {"x": ["Someone@Example.COM"]}, "Someone@example.com"),
    ("date", {}, {"x": ["2026-11-30"]}, "2026-11-30"),
    ("rating", {}, {"x": ["4"]}, 4),
    ("nps", {}, {"x": ["0"]}, 0),
    ("nps", {}, {"x": ["10"]}, 10),
    ("matrix", {}, {"-speed": ["good"], "-price": ["bad"]}, {"speed": "good", "price": "bad"}),
]

# (kind, options, what the respondent sends, the validation error code shown inline)
BAD = [
    ("single_choice", {}, {"x": ["zzz"]}, "invalid_choice"),
    ("single_choice", {}, {"x": ["old"]}, "invalid_choice"),
    ("single_choice", {}, {"x": ["a", "b"]}, "too_many"),
    ("dropdown", {}, {"x": [""]}, "required"),
    ("multiple_choice", {}, {"x": ["a", "nope"]}, "invalid_choice"),
    ("multiple_choice", {"max_picks": 1}, {"x": ["a", "b"]}, "too_many"),
    ("multiple_choice", {"min_picks": 2}, {"x": ["a"]}, "too_few"),
    ("short_text", {}, {"x": ["x" * 501]}, "too_long"),
    ("long_text", {}, {"x": ["   "]}, "required"),
    ("number", {}, {"x": ["twelve"]}, "invalid"),
    ("number", {"min": 0, "max": 10}, {"x": ["11"]}, "too_large"),
    ("email", {}, {"x": ["not-an-address"]}, "invalid"),
    ("date", {}, {"x": ["30/11/2026"]}, "invalid"),
    ("rating", {}, {"x": ["6"]}, "out_of_range"),
    ("nps", {}, {"x": ["11"]}, "out_of_range"),
    ("matrix", {}, {"-speed": ["good"]}, "incomplete"),
    ("matrix", {}, {"-speed": ["meh"], "-price": ["bad"]}, "invalid_choice"),
]


def expected_error(question: Question, data: dict[str, list[str]]) -> tuple[str, str]:
    """The code and text of the error the shared validator gives for this input."""
    querydict = QueryDict(mutable=True)
    for name, values in data.items():
        querydict.setlist(name, values)
    with pytest.raises(ValidationError) as caught:
        validate_answer(question, raw_answer(question, querydict))
    error = caught.value.error_list[0]
    return str(error.code), escape(error.messages[0])


def form_data(question_pk: int, sent: dict[str, list[str]]) -> dict[str, Any]:
    return {f"q{question_pk}{'' if name == 'x' else name}": value for name, value in sent.items()}


@pytest.mark.parametrize(("kind", "options", "sent", "stored"), GOOD)
def test_each_kind_stores_a_valid_answer(
    survey: Survey, anonymous_client: Client, kind: str, options: dict, sent: dict, stored: Any
) -> None:
    question = one_page_survey(survey, kind, options=options)

    page = post(anonymous_client, url_of(survey), form_data(question.pk, sent))

    assert page.status_code == 302
    assert page["Location"] == reverse("survey_public:done", args=[survey.public_id])
    response = Response.objects.get(survey=survey)
    assert Answer.objects.get(response=response, question=question).value == stored
    assert response.invitation is None
    assert response.recipient_reference == ""


@pytest.mark.parametrize(("kind", "options", "sent", "code"), BAD)
def test_each_kind_refuses_bad_input_inline_and_keeps_what_was_typed(
    survey: Survey, anonymous_client: Client, kind: str, options: dict, sent: dict, code: str
) -> None:
    question = one_page_survey(survey, kind, options=options)
    data = form_data(question.pk, sent)
    expected_code, message = expected_error(question, data)
    assert expected_code == code

    page = post(anonymous_client, url_of(survey), data)

    assert page.status_code == 200
    assert Response.objects.count() == 0
    html = page.content.decode()
    assert message in html
    assert f'id="question-{question.pk}"' in html
    assert "has-error" in html
    for name, values in data.items():
        for value in values:
            if not value.strip():
                continue
            if kind in {"short_text", "long_text", "number", "email", "date"}:
                assert value in html  # typed text comes back in the field
            elif value in {c["key"] for c in active_choices(question)} | {
                c["key"] for c in active_columns(question)
            }:
                assert f'name="{name}" value="{value}" checked' in html or (
                    f'value="{value}" selected' in html
                )


@pytest.mark.parametrize(
    "kind",
    [
        "single_choice",
        "multiple_choice",
        "dropdown",
        "short_text",
        "long_text",
        "number",
        "email",
        "date",
        "rating",
        "nps",
        "matrix",
    ],
)
def test_each_kind_when_required_and_empty_says_so(
    survey: Survey, anonymous_client: Client, kind: str
) -> None:
    one_page_survey(survey, kind)

    page = post(anonymous_client, url_of(survey), {})

    assert page.status_code == 200
    assert "This question requires an answer." in page.content.decode()
    assert Response.objects.count() == 0


@pytest.mark.parametrize("kind", ["single_choice", "short_text", "number", "rating", "matrix"])
def test_an_optional_question_left_empty_stores_no_answer(
    survey: Survey, anonymous_client: Client, kind: str
) -> None:
    one_page_survey(survey, kind, required=False)

    page = post(anonymous_client, url_of(survey), {})

    assert page.status_code == 302
    assert Response.objects.filter(survey=survey).count() == 1
    assert Answer.objects.count() == 0


def test_the_form_offers_every_kind_without_javascript(
    survey: Survey, anonymous_client: Client
) -> None:
    for kind in ["single_choice", "multiple_choice", "dropdown", "rating", "nps", "matrix"]:
        add_question(survey, kind)
    add_question(survey, "short_text", "Anything else?")

    html = anonymous_client.get(url_of(survey)).content.decode()

    assert "<script" not in html
    assert 'name="viewport"' in html
    assert html.count('type="radio"') == 3 + 5 + 11 + 2 * 2  # choices, rating, nps, matrix
    assert html.count('type="checkbox"') == 3  # archived Durian is not offered
    assert "Durian" not in html
    assert '<option value="b">Banana</option>' in html


def test_survey_text_is_escaped_and_never_trusted(survey: Survey, anonymous_client: Client) -> None:
    survey.title = "<script>alert(1)</script>Title"
    survey.description = "Line <b>one</b>\nLine two"
    survey.save(update_fields=["title", "description"])
    add_question(
        survey,
        "single_choice",
        '<img src=x onerror="alert(2)">',
        options={"choices": [{"key": "k", "label": "<i>label</i>"}]},
    )

    html = anonymous_client.get(url_of(survey)).content.decode()

    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;Title" in html
    assert "Line &lt;b&gt;one&lt;/b&gt;<br>Line two" in html
    assert "<img src=x" not in html
    assert "&lt;i&gt;label&lt;/i&gt;" in html


def test_a_closed_survey_says_so_with_410_and_stores_nothing(
    survey: Survey, anonymous_client: Client
) -> None:
    question = one_page_survey(survey, "short_text")
    survey.is_open = False
    survey.save(update_fields=["is_open"])

    shown = anonymous_client.get(url_of(survey))
    sent = post(anonymous_client, url_of(survey), {f"q{question.pk}": "hi"})

    assert shown.status_code == 410
    assert "This survey is closed" in shown.content.decode()
    assert sent.status_code == 410
    assert Response.objects.count() == 0


def test_an_unknown_link_is_404(db: None, anonymous_client: Client) -> None:
    assert anonymous_client.get("/s/no-such-survey/").status_code == 404


def test_the_anonymous_link_accepts_many_responses(
    survey: Survey, anonymous_client: Client
) -> None:
    question = one_page_survey(survey, "rating")

    for value in ["1", "5"]:
        assert post(anonymous_client, url_of(survey), {f"q{question.pk}": value}).status_code == 302

    assert sorted(Answer.objects.values_list("value", flat=True)) == [1, 5]


def test_thank_you_page_shows_the_authors_message_escaped(
    survey: Survey, anonymous_client: Client
) -> None:
    survey.thank_you_message = "Thanks <b>a lot</b>!"
    survey.save(update_fields=["thank_you_message"])

    html = anonymous_client.get(
        reverse("survey_public:done", args=[survey.public_id])
    ).content.decode()

    assert "Thanks &lt;b&gt;a lot&lt;/b&gt;!" in html


def test_pages_keep_answers_through_next_and_back_and_submit_validates_all(
    survey: Survey, anonymous_client: Client
) -> None:
    name, rating = two_page_survey(survey)
    url = url_of(survey)

    first = anonymous_client.get(url)
    assert "Page 1 of 2" in first.content.decode()
    empty_next = anonymous_client.post(url, {"page": "1", "action": "next", f"q{name.pk}": ""})
    assert empty_next.status_code == 200
    assert "This question requires an answer." in empty_next.content.decode()

    to_second = anonymous_client.post(url, {"page": "1", "action": "next", f"q{name.pk}": "Hanako"})
    assert to_second.status_code == 302
    assert to_second["Location"] == f"{url}?page=2"
    second = anonymous_client.get(to_second["Location"])
    assert "How are we doing?" in second.content.decode()

    back = anonymous_client.post(url, {"page": "2", "action": "back", f"q{rating.pk}": "3"})
    assert back["Location"] == f"{url}?page=1"
    assert 'value="Hanako"' in anonymous_client.get(back["Location"]).content.decode()
    assert 'value="3" checked' in anonymous_client.get(f"{url}?page=2").content.decode()

    done = anonymous_client.post(
        url, {"page": "2", "action": "submit", "started": opened_ago(60), f"q{rating.pk}": "5"}
    )
    assert done.status_code == 302
    response = Response.objects.get(survey=survey)
    assert {a.question_id: a.value for a in response.answers.all()} == {
        name.pk: "Hanako",
        rating.pk: 5,
    }
    assert response.started_at is not None
    assert response.started_at <= response.submitted_at


def test_a_skipped_page_is_shown_again_with_its_errors_on_submit(
    survey: Survey, anonymous_client: Client
) -> None:
    _name, rating = two_page_survey(survey)

    page = anonymous_client.post(
        url_of(survey),
        {"page": "2", "action": "submit", "started": opened_ago(60), f"q{rating.pk}": "4"},
    )

    html = page.content.decode()
    assert page.status_code == 200
    assert "Page 1 of 2" in html
    assert "This question requires an answer." in html
    assert Response.objects.count() == 0


def test_archived_questions_are_no_longer_asked(survey: Survey, anonymous_client: Client) -> None:
    add_question(survey, "short_text", "Retired question", is_archived=True, is_required=True)
    kept = add_question(survey, "short_text", "Current question", is_required=True)

    html = anonymous_client.get(url_of(survey)).content.decode()
    sent = post(anonymous_client, url_of(survey), {f"q{kept.pk}": "ok"})

    assert "Retired question" not in html
    assert sent.status_code == 302


# --- input that is too much or malformed ---------------------------------------------------------


def test_a_huge_text_answer_is_refused_with_its_limit_and_kept_as_typed(
    survey: Survey, anonymous_client: Client
) -> None:
    long = one_page_survey(survey, "long_text")
    short = add_question(survey, "short_text", "Your name")
    essay, name = "あ" * 50_000, "n" * 600

    page = post(anonymous_client, url_of(survey), {f"q{long.pk}": essay, f"q{short.pk}": name})

    html = page.content.decode()
    assert page.status_code == 200
    assert "Write at most 10000 characters (this answer has 50000)." in html
    assert "Write at most 500 characters (this answer has 600)." in html
    assert html.count(essay) == 1 and html.count(name) == 1  # nothing typed is lost
    assert "maxlength" not in html  # a browser would cut a pasted answer short without a word
    assert Response.objects.count() == 0


def anonymous_with_csrf(url: str) -> tuple[Client, str]:
    """A browser that has the form open: the CSRF check applies as in production."""
    client = Client(enforce_csrf_checks=True)
    client.get(url)
    return client, client.cookies["csrftoken"].value


@pytest.mark.parametrize("link", ["shared", "invitation"])
def test_a_body_too_large_to_read_gets_a_page_that_says_what_to_do(
    survey: Survey, link: str
) -> None:
    question = one_page_survey(survey, "long_text")
    url = url_of(survey)
    if link == "invitation":
        invitation = Invitation.objects.create(survey=survey, recipient_reference="crm:lead:1")
        url = reverse("survey_public:invitation", args=[invitation.token])
    client, token = anonymous_with_csrf(url)

    page = post(client, url, {"csrfmiddlewaretoken": token, f"q{question.pk}": "x" * 3_000_000})

    html = page.content.decode()
    assert page.status_code == 413
    assert "<h1>Your answers are too long to send</h1>" in html
    assert "What you sent is larger than 2.5\xa0MB, so none of it was read or stored." in html
    assert "Use your browser's Back button: your answers are still in the form there." in html
    assert Response.objects.count() == 0


def test_the_csrf_check_still_refuses_a_post_without_its_token(survey: Survey) -> None:
    question = one_page_survey(survey, "short_text")
    client, _token = anonymous_with_csrf(url_of(survey))

    page = post(client, url_of(survey), {f"q{question.pk}": "hello"})

    assert page.status_code == 403
    assert Response.objects.count() == 0


def test_an_answer_to_a_question_of_another_survey_is_ignored(
    survey: Survey, anonymous_client: Client
) -> None:
    mine = one_page_survey(survey, "short_text")
    other = Survey.objects.create(portal=survey.portal, title="Other")
    theirs = add_question(other, "short_text", "Not on this form")

    page = post(
        anonymous_client, url_of(survey), {f"q{mine.pk}": "mine", f"q{theirs.pk}": "theirs"}
    )

    assert page.status_code == 302
    assert list(Answer.objects.values_list("question_id", "value")) == [(mine.pk, "mine")]
    assert not Response.objects.filter(survey=other).exists()


def test_bytes_that_are_not_utf8_are_replaced_not_a_crash(
    survey: Survey, anonymous_client: Client
) -> None:
    question = one_page_survey(survey, "short_text")
    started = urlencode({"started": opened_ago(60)})
    body = f"page=1&action=submit&{started}&q{question.pk}=%FF%FEabc".encode()

    page = anonymous_client.post(
        url_of(survey), body, content_type="application/x-www-form-urlencoded"
    )

    assert page.status_code == 302
    assert Answer.objects.get().value == "\ufffd\ufffdabc"
