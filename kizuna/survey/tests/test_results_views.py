"""Results pages: summary with charts, responses list and detail, date filter, CSV, delete."""

from __future__ import annotations

import csv
import datetime
import io
import re
from typing import Any
from unittest import mock

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kizuna.survey.models import Answer, Invitation, Question, Response, Survey, SurveyAccount
from kizuna.survey.public import services as public_services
from kizuna.survey.tests.respondent import add_question
from kizuna.survey.webhooks.models import Delivery
from kizuna.survey.webhooks.services import create_endpoint

TOKYO = datetime.timezone(datetime.timedelta(hours=9))


QUESTIONS = {
    "fruit": ("single_choice", "Favourite fruit?"),
    "toppings": ("multiple_choice", "Toppings?"),
    "rating": ("rating", "How was it?"),
    "nps": ("nps", "Would you recommend us?"),
    "age": ("number", "Age?"),
    "comment": ("long_text", "Anything else?"),
    "grid": ("matrix", "Rate us"),
}


@pytest.fixture
def questions(survey: Survey) -> dict[str, Question]:
    return {name: add_question(survey, kind, text) for name, (kind, text) in QUESTIONS.items()}


def submit(survey: Survey, at: datetime.datetime, **values: Any) -> Response:
    """A response submitted at `at` (the clock set back), so the summary counts it on its day."""
    by_text = {q.text: q for q in survey.questions.all()}
    with mock.patch("django.utils.timezone.now", return_value=at):
        return public_services.submit_response(
            survey=survey,
            invitation=None,
            answers={by_text[QUESTIONS[name][1]]: value for name, value in values.items()},
            language="ja",
        )


@pytest.fixture
def three_responses(survey: Survey, questions: dict[str, Question]) -> list[Response]:
    return [
        submit(
            survey,
            datetime.datetime(2026, 11, 1, 10, 0, tzinfo=TOKYO),
            fruit="a",
            toppings=["a", "b"],
            rating=5,
            nps=10,
            age=30,
            comment='=HYPERLINK("http://evil")',
            grid={"speed": "good", "price": "bad"},
        ),
        submit(
            survey,
            datetime.datetime(2026, 11, 1, 23, 30, tzinfo=TOKYO),
            fruit="a",
            rating=3,
            nps=7,
            age=40,
            comment="とても良かったです",
        ),
        submit(
            survey,
            datetime.datetime(2026, 11, 3, 9, 0, tzinfo=TOKYO),
            fruit="b",
            toppings=["b"],
            rating=1,
            nps=2,
            age=20,
            grid={"speed": "good"},
        ),
    ]


def summary_url(survey: Survey) -> str:
    return reverse("survey:survey_results:summary", args=[survey.pk])


def list_url(survey: Survey) -> str:
    return reverse("survey:survey_results:responses", args=[survey.pk])


def detail_url(response: Response) -> str:
    return reverse("survey:survey_results:response", args=[response.survey_id, response.pk])


def delete_url(response: Response) -> str:
    return reverse("survey:survey_results:response-delete", args=[response.survey_id, response.pk])


def page_url(page: str, response: Response) -> str:
    """The URL of one results page, about `response` or its survey."""
    if page == "detail":
        return detail_url(response)
    if page == "delete":
        return delete_url(response)
    return {"summary": summary_url, "list": list_url, "export": export_url}[page](response.survey)


def csv_body(page: Any) -> bytes:
    return b"".join(page.streaming_content)


def export_url(survey: Survey) -> str:
    return reverse("survey:survey_results:export", args=[survey.pk])


# --- persona matrix ---------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["ada", "bob"])
@pytest.mark.parametrize("page", ["summary", "list", "detail", "export"])
def test_members_of_the_account_see_every_results_page(
    request: pytest.FixtureRequest, three_responses: list[Response], persona: str, page: str
) -> None:
    client: Client = request.getfixturevalue(f"{persona}_client")
    response = three_responses[0]
    url = page_url(page, response)

    assert client.get(url).status_code == 200


@pytest.mark.parametrize("page", ["summary", "list", "detail", "export", "delete"])
def test_an_outsider_gets_404_on_every_results_page(
    carol_client: Client, three_responses: list[Response], page: str
) -> None:
    response = three_responses[0]
    url = page_url(page, response)

    assert carol_client.get(url).status_code == 404
    assert carol_client.post(delete_url(response)).status_code == 404
    assert Response.objects.filter(pk=response.pk).exists()


@pytest.mark.parametrize("page", ["summary", "list", "detail", "export", "delete"])
def test_signed_out_visitors_are_sent_to_sign_in(
    anonymous_client: Client, three_responses: list[Response], page: str
) -> None:
    response = three_responses[0]
    url = page_url(page, response)

    page_response = anonymous_client.get(url)

    assert page_response.status_code == 302
    assert page_response["Location"].startswith(reverse("identity:login"))
    assert anonymous_client.post(delete_url(response)).status_code == 302
    assert Response.objects.filter(pk=response.pk).exists()


def test_a_response_of_another_survey_is_404_under_this_survey(
    ada_client: Client, survey: Survey, three_responses: list[Response]
) -> None:
    other = Survey.objects.create(portal=survey.portal, title="Other")

    url = reverse("survey:survey_results:response", args=[other.pk, three_responses[0].pk])

    assert ada_client.get(url).status_code == 404


# --- summary ---------------------------------------------------------------------------------


def test_summary_shows_counts_percentages_averages_and_nps(
    ada_client: Client, three_responses: list[Response]
) -> None:
    html = ada_client.get(summary_url(three_responses[0].survey)).content.decode()

    assert "3 responses" in html
    # single choice: Apple 2 of 3, Banana 1 of 3, as SVG bars with count and %
    assert "<svg" in html and "Apple: 2 (66.7%)" in html and "Banana: 1 (33.3%)" in html
    # multiple choice: percentages of the 2 who answered
    assert "Banana: 2 (100.0%)" in html
    # rating average (5+3+1)/3 and NPS: promoters 1, passives 1, detractors 1 -> 0
    assert "<dd>3.0</dd>" in html
    assert '<dd class="nps-score">0</dd>' in html
    assert "<dd>1 (33.3%)</dd>" in html
    # number stats
    assert "<dd>30.0</dd>" in html and "<dd>20</dd>" in html and "<dd>40</dd>" in html
    # latest text answers, escaped
    assert "とても良かったです" in html
    assert "=HYPERLINK(&quot;http://evil&quot;)" in html
    # matrix counts: Speed good 2, Price bad 1
    assert '<th scope="row">Speed</th><td class="numeric">2</td><td class="numeric">0</td>' in html
    assert '<th scope="row">Price</th><td class="numeric">0</td><td class="numeric">1</td>' in html
    # responses per day: 1 Nov (2), 2 Nov (0), 3 Nov (1)
    assert "Responses per day" in html
    assert html.count("<script") == html.count('<script src="/static/')  # no inline script
    assert 'style="' not in html


def test_the_date_filter_applies_to_every_summary(
    ada_client: Client, three_responses: list[Response]
) -> None:
    survey = three_responses[0].survey

    html = ada_client.get(
        summary_url(survey), {"date_from": "2026-11-03", "date_to": "2026-11-03"}
    ).content.decode()

    assert "1 response" in html
    assert "Banana: 1 (100.0%)" in html
    assert '<dd class="nps-score">-100</dd>' in html
    assert "とても良かったです" not in html


def test_a_reversed_date_range_is_an_inline_error_and_filters_nothing(
    ada_client: Client, three_responses: list[Response]
) -> None:
    html = ada_client.get(
        summary_url(three_responses[0].survey),
        {"date_from": "2026-11-05", "date_to": "2026-11-01"},
    ).content.decode()

    assert "The start date must not be after the end date." in html
    assert "3 responses" in html
    assert 'value="2026-11-05"' in html


def test_archived_questions_and_choices_still_appear_in_results_marked(
    ada_client: Client,
    survey: Survey,
    three_responses: list[Response],
    questions: dict[str, Question],
) -> None:
    fruit = questions["fruit"]
    fruit.is_archived = True
    fruit.options = {
        "choices": [
            {"key": "a", "label": "Apple", "archived": True},
            {"key": "b", "label": "Banana"},
        ]
    }
    fruit.save(update_fields=["is_archived", "options"])

    html = ada_client.get(summary_url(survey)).content.decode()

    assert "Favourite fruit?" in html
    assert "Apple (archived): 2 (66.7%)" in html
    assert '<span class="badge muted">Archived</span>' in html


def test_the_summary_is_in_japanese_for_a_japanese_user(
    ada_client: Client, ada: Any, three_responses: list[Response]
) -> None:
    ada.language = "ja"
    ada.save(update_fields=["language"])

    html = ada_client.get(summary_url(three_responses[0].survey)).content.decode()

    assert "3 件の回答" in html
    assert "推奨者（9〜10）" in html
    assert "日ごとの回答数" in html


def test_an_empty_survey_says_there_is_nothing_yet(ada_client: Client, survey: Survey) -> None:
    html = ada_client.get(summary_url(survey)).content.decode()

    assert "No responses in this period yet." in html
    assert "This survey has no questions yet." in html
    assert f'href="{reverse("survey:survey", args=[survey.pk])}"' in html  # back to the survey


# --- responses list and detail ------------------------------------------------------------------


def test_the_list_shows_responses_newest_first_and_filters_by_date(
    bob_client: Client, three_responses: list[Response]
) -> None:
    survey = three_responses[0].survey
    html = bob_client.get(list_url(survey)).content.decode()
    filtered = bob_client.get(list_url(survey), {"date_to": "2026-11-02"}).content.decode()

    links = [detail_url(r) for r in three_responses]
    assert html.index(links[2]) < html.index(links[1]) < html.index(links[0])
    assert links[2] not in filtered and links[0] in filtered and links[1] in filtered


def test_the_list_is_paginated(ada_client: Client, survey: Survey, questions: Any) -> None:
    start = datetime.datetime(2026, 10, 1, 12, 0, tzinfo=TOKYO)
    for minute in range(51):
        submit(survey, start + datetime.timedelta(minutes=minute), rating=4)

    first = ada_client.get(list_url(survey)).content.decode()
    second = ada_client.get(list_url(survey), {"page": 2}).content.decode()

    detail_link = re.compile(rf'href="/survey/results/{survey.pk}/responses/[0-9a-f-]{{36}}/"')
    assert len(detail_link.findall(first)) == 50
    assert len(detail_link.findall(second)) == 1
    assert "Page 1 of 2" in first
    assert "Page 2 of 2" in second


def test_the_detail_shows_every_answer_with_labels(
    bob_client: Client, three_responses: list[Response]
) -> None:
    html = bob_client.get(detail_url(three_responses[0])).content.decode()

    assert "Apple" in html
    assert "Apple, Banana" in html
    assert "Speed: Good; Price: Bad" in html
    assert "Delete" not in html  # Bob is not an administrator


def answer_through_invitation(survey: Survey) -> Response:
    """Ada's customer opens her invitation, moves past a page and submits; times pinned."""
    invitation = Invitation.objects.create(
        survey=survey,
        recipient_reference="crm:contact:42",
        email="hanako@example.com",
        name="Yamada Hanako",
    )
    public_services.record_invitation_opened(invitation=invitation)
    public_services.record_invitation_started(invitation=invitation)
    response = public_services.submit_response(
        survey=survey, invitation=invitation, answers={}, language="ja"
    )
    Invitation.objects.filter(pk=invitation.pk).update(
        created_at=datetime.datetime(2026, 11, 1, 9, 0, tzinfo=TOKYO),
        opened_at=datetime.datetime(2026, 11, 1, 9, 15, tzinfo=TOKYO),
        started_at=datetime.datetime(2026, 11, 1, 9, 20, tzinfo=TOKYO),
        completed_at=datetime.datetime(2026, 11, 1, 9, 30, tzinfo=TOKYO),
    )
    return response


def test_the_detail_shows_the_invitations_recipient_and_times(
    bob_client: Client, survey: Survey, questions: Any
) -> None:
    response = answer_through_invitation(survey)

    html = bob_client.get(detail_url(response)).content.decode()

    assert '<h2 id="invitation-heading">Invitation</h2>' in html
    assert "<dt>Name</dt><dd>Yamada Hanako</dd>" in html
    assert "<dt>Email</dt><dd>hanako@example.com</dd>" in html
    assert "<dt>Recipient reference</dt><dd><code>crm:contact:42</code></dd>" in html
    assert "<dt>Invitation created</dt><dd>Nov. 1, 2026, 9:00 AM</dd>" in html
    assert "<dt>Opened</dt><dd>Nov. 1, 2026, 9:15 AM</dd>" in html
    assert "<dt>Started</dt><dd>Nov. 1, 2026, 9:20 AM</dd>" in html
    assert "<dt>Completed</dt><dd>Nov. 1, 2026, 9:30 AM</dd>" in html
    assert "Shared link" not in html


def test_the_invitation_times_are_localized_in_japanese(
    ada_client: Client, ada: Any, survey: Survey, questions: Any
) -> None:
    ada.language = "ja"
    ada.save(update_fields=["language"])
    response = answer_through_invitation(survey)

    html = ada_client.get(detail_url(response)).content.decode()

    assert "<dt>招待の作成日時</dt><dd>2026年11月1日9:00</dd>" in html
    assert "<dt>開封日時</dt><dd>2026年11月1日9:15</dd>" in html
    assert "<dt>回答開始日時</dt><dd>2026年11月1日9:20</dd>" in html
    assert "<dt>回答完了日時</dt><dd>2026年11月1日9:30</dd>" in html


def test_an_invitation_time_not_yet_recorded_says_so(
    ada_client: Client, survey: Survey, questions: Any
) -> None:
    response = answer_through_invitation(survey)
    assert response.invitation is not None
    Invitation.objects.filter(pk=response.invitation.pk).update(opened_at=None, started_at=None)

    html = ada_client.get(detail_url(response)).content.decode()

    assert '<dt>Opened</dt><dd><span class="muted">Not recorded</span></dd>' in html
    assert '<dt>Started</dt><dd><span class="muted">Not recorded</span></dd>' in html


def test_a_response_through_the_shared_link_shows_no_invitation(
    ada_client: Client, three_responses: list[Response]
) -> None:
    html = ada_client.get(detail_url(three_responses[0])).content.decode()

    assert "<dt>Respondent</dt><dd>Shared link</dd>" in html
    assert "invitation-heading" not in html


def test_an_anonymous_survey_shows_nothing_of_the_invitation(
    ada_client: Client, survey: Survey, questions: Any
) -> None:
    survey.is_anonymous = True
    survey.save(update_fields=["is_anonymous"])
    response = answer_through_invitation(survey)

    html = ada_client.get(detail_url(response)).content.decode()

    assert response.invitation_id is None
    assert "invitation-heading" not in html
    assert "Yamada Hanako" not in html and "hanako@example.com" not in html
    assert "crm:contact:42" not in html
    assert "Respondent" not in html


def test_a_survey_made_anonymous_later_hides_the_invitation_it_still_links(
    ada_client: Client, survey: Survey, questions: Any
) -> None:
    response = answer_through_invitation(survey)
    survey.is_anonymous = True
    survey.save(update_fields=["is_anonymous"])

    html = ada_client.get(detail_url(response)).content.decode()

    assert Response.objects.get(pk=response.pk).invitation_id is not None
    assert "invitation-heading" not in html
    assert "Yamada Hanako" not in html and "hanako@example.com" not in html
    assert "crm:contact:42" not in html


# --- CSV export --------------------------------------------------------------------------------


def test_csv_export_is_utf8_with_bom_one_column_per_question_labels_and_guarded(
    ada_client: Client, three_responses: list[Response]
) -> None:
    survey = three_responses[0].survey

    page = ada_client.get(export_url(survey))
    body = csv_body(page)

    assert page["Content-Type"] == "text/csv; charset=utf-8"
    assert page["Content-Disposition"] == f'attachment; filename="survey-{survey.pk}-responses.csv"'
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0] == [
        "Response ID",
        "Submitted at",
        "Language",
        "Recipient reference",
        "Favourite fruit?",
        "Toppings?",
        "How was it?",
        "Would you recommend us?",
        "Age?",
        "Anything else?",
        "Rate us",
    ]
    assert rows[1] == [
        str(three_responses[0].pk),
        "2026-11-01T10:00:00+09:00",
        "ja",
        "",
        "Apple",
        "Apple, Banana",
        "5",
        "10",
        "30",
        '\'=HYPERLINK("http://evil")',
        "Speed: Good; Price: Bad",
    ]
    assert rows[2][9] == "とても良かったです"
    assert len(rows) == 4


def test_csv_export_of_an_anonymous_survey_has_no_recipient_column(
    ada_client: Client, survey: Survey, three_responses: list[Response]
) -> None:
    survey.is_anonymous = True
    survey.save(update_fields=["is_anonymous"])

    rows = list(
        csv.reader(io.StringIO(csv_body(ada_client.get(export_url(survey))).decode("utf-8-sig")))
    )

    assert rows[0][:4] == ["Response ID", "Submitted at", "Language", "Favourite fruit?"]
    assert len(rows[1]) == 10


def test_csv_export_is_in_the_users_language(
    ada_client: Client, ada: Any, three_responses: list[Response]
) -> None:
    ada.language = "ja"
    ada.save(update_fields=["language"])

    body = csv_body(ada_client.get(export_url(three_responses[0].survey))).decode("utf-8-sig")

    assert body.splitlines()[0].startswith("回答 ID,送信日時,言語,")


def test_csv_export_follows_the_date_filter(
    ada_client: Client, three_responses: list[Response]
) -> None:
    page = ada_client.get(export_url(three_responses[0].survey), {"date_from": "2026-11-02"})

    rows = list(csv.reader(io.StringIO(csv_body(page).decode("utf-8-sig"))))

    assert [row[0] for row in rows[1:]] == [str(three_responses[2].pk)]


def test_csv_cells_never_start_a_formula_but_numbers_stay_numbers() -> None:
    from kizuna.survey.results.summaries import csv_cell

    assert csv_cell("=1+1") == "'=1+1"
    assert csv_cell("+81 3 1234") == "'+81 3 1234"
    assert csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert csv_cell("\tx") == "'\tx"
    assert csv_cell("-12.5") == "-12.5"
    assert csv_cell("plain") == "plain"


# --- delete ------------------------------------------------------------------------------------


def test_an_administrator_deletes_a_response_after_confirming(
    ada_client: Client, account: SurveyAccount, three_responses: list[Response]
) -> None:
    create_endpoint(
        account=account,
        url="http://127.0.0.1:8000/crm/webhooks/survey/",
        events=["response.deleted"],
        by=None,
    )
    response = three_responses[0]

    confirm = ada_client.get(delete_url(response))
    done = ada_client.post(delete_url(response))

    assert confirm.status_code == 200
    assert "Delete the response?" in confirm.content.decode()
    assert done.status_code == 302
    assert done["Location"] == list_url(response.survey)
    assert not Response.objects.filter(pk=response.pk).exists()
    assert Answer.objects.filter(response_id=response.pk).count() == 0
    delivery = Delivery.objects.get(event_type="response.deleted")
    assert delivery.payload["data"]["response_id"] == str(response.pk)


def test_a_member_may_not_delete_a_response(
    bob_client: Client, three_responses: list[Response]
) -> None:
    response = three_responses[0]

    assert bob_client.get(delete_url(response)).status_code == 403
    assert bob_client.post(delete_url(response)).status_code == 403
    assert Response.objects.filter(pk=response.pk).exists()


def test_an_old_response_stays_countable_after_submit_time_is_far_in_the_past(
    ada_client: Client, survey: Survey, questions: Any
) -> None:
    submit(survey, timezone.now() - datetime.timedelta(days=400), rating=2)
    submit(survey, timezone.now(), rating=4)

    html = ada_client.get(summary_url(survey)).content.decode()

    assert "Responses per month" in html
    assert "2 responses" in html
