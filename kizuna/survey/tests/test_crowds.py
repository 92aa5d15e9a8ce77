"""Issue 12: respondents who share an address are never turned away.

Point 1: an invitation link is bounded by its token, not by the address; made-up tokens are
refused cheaply (404) and counted per address.
Point 2: the shared link lets a crowd behind one address through (a token bucket), and an
author can set the survey's own ceilings (in all, per hour), shown in the builder.
Point 3: spam is held by what crowds do not trip: a honeypot, a minimum time from opening to
submitting, and "one response per browser" as an option; held submissions get a clear page
and are counted on the results page.
Point 4: a submission refused for a limit comes back with every answer typed and when to
send it again.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse

from kizuna.config import Rate
from kizuna.survey.models import HeldSubmissionCount, Invitation, Question, Response, Survey
from kizuna.survey.tests.respondent import one_page_survey, opened_ago, post
from kizuna.testing.races import require_postgresql, run_together

pytestmark = pytest.mark.django_db
OFFICE = "198.51.100.20"  # the one address of a customer company behind its NAT


@pytest.fixture
def question(survey: Survey) -> Question:
    return one_page_survey(survey, "nps")


def invitation_url(invitation: Invitation) -> str:
    return reverse("survey_public:invitation", args=[invitation.token])


def public_url(survey: Survey) -> str:
    return reverse("survey_public:survey", args=[survey.public_id])


@override_settings(KIZUNA_SURVEY_SUBMIT_RATE=Rate(1, 600))
def test_12_1_300_invitation_submissions_from_one_address_are_all_stored(
    survey: Survey, question: Question
) -> None:
    invitations = [
        Invitation.objects.create(survey=survey, recipient_reference=f"crm:contact:{n}")
        for n in range(300)
    ]

    statuses = {
        post(
            Client(), invitation_url(invitation), {f"q{question.pk}": "9"}, REMOTE_ADDR=OFFICE
        ).status_code
        for invitation in invitations
    }

    assert statuses == {302}
    assert Response.objects.count() == 300
    assert Invitation.objects.filter(completed_at__isnull=True).count() == 0


@override_settings(KIZUNA_SURVEY_SUBMIT_RATE=Rate(1, 600))
def test_12_1_invitations_do_not_use_up_the_public_links_allowance(
    survey: Survey, question: Question
) -> None:
    invitation = Invitation.objects.create(survey=survey, recipient_reference="crm:lead:1")
    public = reverse("survey_public:survey", args=[survey.public_id])

    invited = post(Client(), invitation_url(invitation), {f"q{question.pk}": "8"})
    shared = post(Client(), public, {f"q{question.pk}": "7"})

    assert (invited.status_code, shared.status_code) == (302, 302)


@override_settings(KIZUNA_SURVEY_UNKNOWN_LINK_RATE=Rate(3, 600))
def test_12_1_made_up_tokens_get_404_and_are_counted_per_address(
    survey: Survey, question: Question
) -> None:
    invitation = Invitation.objects.create(survey=survey, recipient_reference="crm:lead:1")
    guesses = [Client().get(f"/s/i/guess-{n}/", REMOTE_ADDR=OFFICE).status_code for n in range(3)]

    limited = Client().post("/s/i/guess-9/", {"page": "1"}, REMOTE_ADDR=OFFICE)
    real = post(Client(), invitation_url(invitation), {f"q{question.pk}": "10"}, REMOTE_ADDR=OFFICE)
    elsewhere = Client().get("/s/i/guess-9/", REMOTE_ADDR="192.0.2.44")

    assert guesses == [404, 404, 404]
    assert limited.status_code == 429
    assert 1 <= int(limited["Retry-After"]) <= 200
    assert "Too many unknown links" in limited.content.decode()
    assert real.status_code == 302
    assert elsewhere.status_code == 404
    assert Response.objects.count() == 1


@override_settings(KIZUNA_SURVEY_UNKNOWN_LINK_RATE=Rate(1, 600))
def test_12_1_the_unknown_links_page_speaks_the_browsers_language() -> None:
    Client().get("/s/i/guess-1/", REMOTE_ADDR=OFFICE)

    limited = Client().get("/s/i/guess-2/", REMOTE_ADDR=OFFICE, HTTP_ACCEPT_LANGUAGE="ja")

    assert limited.status_code == 429
    assert "存在しないリンクが多すぎます" in limited.content.decode()


@override_settings(KIZUNA_SURVEY_UNKNOWN_LINK_RATE=None)
def test_12_1_unknown_links_switched_off_are_404_and_never_counted() -> None:
    statuses = [Client().get(f"/s/i/guess-{n}/", REMOTE_ADDR=OFFICE).status_code for n in range(5)]

    assert statuses == [404] * 5
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM kizuna_cache WHERE cache_key LIKE %s",
            ["%ratelimit-bucket:survey-unknown-link:%"],
        )
        assert cursor.fetchone()[0] == 0


def test_12_2_12_3_300_public_submissions_from_one_address_within_a_minute_are_all_stored(
    survey: Survey, question: Question
) -> None:
    assert Rate(600, 600) == settings.KIZUNA_SURVEY_SUBMIT_RATE  # the defaults
    assert settings.KIZUNA_SURVEY_MIN_SECONDS == 3
    people, scripts = [], []

    for n in range(300):
        sent = post(
            Client(), public_url(survey), {f"q{question.pk}": str(n % 11)}, REMOTE_ADDR=OFFICE
        )
        people.append(sent.status_code)
        if n % 30 == 0:  # a script among them: no time to read, or the honeypot filled in
            fast = Client().post(
                public_url(survey), {"page": "1", "action": "submit", f"q{question.pk}": "0"}
            )
            trapped = post(Client(), public_url(survey), {f"q{question.pk}": "0", "website": "x"})
            scripts += [fast.status_code, trapped.status_code]

    assert people == [302] * 300
    assert scripts == [400] * 20
    assert Response.objects.count() == 300
    held = dict(HeldSubmissionCount.objects.values_list("reason", "count"))
    assert held == {"too_fast": 10, "honeypot": 10}


def test_12_2_an_author_sets_the_ceilings_and_the_builder_shows_them(
    ada_client: Client, survey: Survey
) -> None:
    saved = ada_client.post(
        reverse("survey:survey-edit", args=[survey.pk]),
        {
            "title": survey.title,
            "portal": survey.portal_id,
            "language": "en",
            "is_open": "on",
            "max_responses": "500",
            "max_responses_per_hour": "120",
        },
    )
    survey.refresh_from_db()
    page = ada_client.get(reverse("survey:survey", args=[survey.pk])).content.decode()
    form = ada_client.get(reverse("survey:survey-edit", args=[survey.pk])).content.decode()

    assert saved.status_code == 302
    assert (survey.max_responses, survey.max_responses_per_hour) == (500, 120)
    assert "at most 500 responses in all, at most 120 responses an hour" in page
    assert "Maximum responses per hour" in form


def test_12_2_a_ceiling_of_zero_is_refused_by_the_form(ada_client: Client, survey: Survey) -> None:
    page = ada_client.post(
        reverse("survey:survey-edit", args=[survey.pk]),
        {"title": "T", "portal": survey.portal_id, "language": "en", "max_responses": "0"},
    )

    assert page.status_code == 400
    survey.refresh_from_db()
    assert survey.max_responses is None


@pytest.mark.parametrize(
    ("language", "notice"),
    [
        ("en", "This survey accepts 2 responses an hour, and they have come in."),
        ("ja", "このアンケートが受け付ける回答は 1 時間に 2 件までで、その数に達しました。"),
    ],
)
def test_12_2_12_4_the_hourly_ceiling_refuses_the_next_response_and_keeps_the_answers(
    survey: Survey, language: str, notice: str
) -> None:
    survey.language = language
    survey.max_responses_per_hour = 2
    survey.save(update_fields=["language", "max_responses_per_hour"])
    text = add_text_question(survey)
    sent = [
        post(Client(), public_url(survey), {f"q{text.pk}": f"answer {n}"}).status_code
        for n in (1, 2)
    ]
    late = Client()

    refused = post(late, public_url(survey), {f"q{text.pk}": "my long considered answer"})

    assert sent == [302, 302]
    assert refused.status_code == 429
    assert 3500 <= int(refused["Retry-After"]) <= 3600
    page = refused.content.decode()
    assert notice in page
    assert 'value="my long considered answer"' in page
    assert Response.objects.count() == 2
    assert 'value="my long considered answer"' in late.get(public_url(survey)).content.decode()


def add_text_question(survey: Survey) -> Question:
    return one_page_survey(survey, "short_text")


def test_12_2_the_total_ceiling_closes_the_shared_link_but_not_invitations(
    survey: Survey, question: Question
) -> None:
    survey.max_responses = 2
    survey.save(update_fields=["max_responses"])
    invitation = Invitation.objects.create(survey=survey, recipient_reference="crm:lead:7")
    sent = [
        post(Client(), public_url(survey), {f"q{question.pk}": "5"}).status_code for _ in (1, 2)
    ]

    refused = post(Client(), public_url(survey), {f"q{question.pk}": "6"})
    shown = Client().get(public_url(survey))
    invited = post(Client(), invitation_url(invitation), {f"q{question.pk}": "7"})

    assert sent == [302, 302]
    assert (refused.status_code, shown.status_code) == (410, 410)
    assert "This survey has all the responses it needs" in refused.content.decode()
    assert invited.status_code == 302
    assert Response.objects.count() == 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_12_2_concurrent_submissions_never_pass_the_ceiling(
    survey: Survey, question: Question
) -> None:
    require_postgresql()
    survey.max_responses = 3
    survey.save(update_fields=["max_responses"])
    statuses: list[int] = []

    def submit(value: int) -> Callable[[], None]:
        def action() -> None:
            page = post(Client(), public_url(survey), {f"q{question.pk}": str(value)})
            statuses.append(page.status_code)

        return action

    errors = run_together(*(submit(n) for n in range(8)))

    assert errors == []
    assert sorted(statuses) == [302] * 3 + [410] * 5
    assert Response.objects.filter(survey=survey).count() == 3


@pytest.mark.parametrize(
    ("language", "notice"),
    [
        ("en", "Your answers were not recorded yet."),
        ("ja", "回答はまだ記録されていません。"),
    ],
)
def test_12_3_a_submission_faster_than_a_person_is_held_with_the_answers_kept(
    survey: Survey, language: str, notice: str
) -> None:
    survey.language = language
    survey.save(update_fields=["language"])
    text = add_text_question(survey)
    client = Client()
    form = client.get(public_url(survey)).content.decode()
    assert 'name="started"' in form

    held = client.post(
        public_url(survey),
        {"page": "1", "action": "submit", "started": opened_ago(1), f"q{text.pk}": "quick"},
    )
    again = post(client, public_url(survey), {f"q{text.pk}": "quick"})

    assert held.status_code == 400
    assert notice in held.content.decode()
    assert 'value="quick"' in held.content.decode()
    assert again.status_code == 302
    assert Response.objects.count() == 1
    assert HeldSubmissionCount.objects.get().reason == "too_fast"


def test_12_3_the_honeypot_is_out_of_sight_and_out_of_reach(survey: Survey) -> None:
    one_page_survey(survey, "short_text")

    page = Client().get(public_url(survey)).content.decode()

    assert '<div class="form-trap" aria-hidden="true">' in page
    assert 'name="website" value="" tabindex="-1" autocomplete="off"' in page


def test_12_3_held_submissions_are_counted_on_the_results_page(
    ada_client: Client, survey: Survey, question: Question
) -> None:
    for _ in range(12):
        post(Client(), public_url(survey), {f"q{question.pk}": "1", "website": "spam.example"})

    page = ada_client.get(
        reverse("survey:survey_results:summary", args=[survey.pk])
    ).content.decode()

    assert "Held as likely automated: 12 today" in page
    assert Response.objects.count() == 0


def test_12_3_one_response_per_browser_when_the_author_asks_for_it(
    ada_client: Client, survey: Survey, question: Question
) -> None:
    survey.one_response_per_browser = True
    survey.save(update_fields=["one_response_per_browser"])
    invitation = Invitation.objects.create(survey=survey, recipient_reference="crm:lead:3")
    browser = Client()

    first = post(browser, public_url(survey), {f"q{question.pk}": "8"})
    shown = browser.get(public_url(survey))
    second = post(browser, public_url(survey), {f"q{question.pk}": "9"})
    neighbour = post(Client(), public_url(survey), {f"q{question.pk}": "7"})
    invited = post(browser, invitation_url(invitation), {f"q{question.pk}": "6"})
    results = ada_client.get(reverse("survey:survey_results:summary", args=[survey.pk]))

    assert (first.status_code, shown.status_code, second.status_code) == (302, 200, 409)
    assert "one was sent from this one" in shown.content.decode()
    assert (neighbour.status_code, invited.status_code) == (302, 302)
    assert Response.objects.count() == 3
    assert "Refused as a second response from one browser: 1 today" in results.content.decode()


def test_12_3_the_answered_cookie_of_another_survey_or_forged_does_not_count(
    survey: Survey, question: Question
) -> None:
    survey.one_response_per_browser = True
    survey.save(update_fields=["one_response_per_browser"])
    browser = Client()
    browser.cookies[f"kizuna_answered_{survey.public_id}"] = "1"

    sent = post(browser, public_url(survey), {f"q{question.pk}": "8"})

    assert sent.status_code == 302


def test_12_3_a_start_kept_from_long_ago_is_good_for_one_response(
    survey: Survey, question: Question
) -> None:
    kept_start = opened_ago(3600)  # a bot opened the form once, an hour ago

    first = post(Client(), public_url(survey), {f"q{question.pk}": "9", "started": kept_start})
    replayed = [
        post(Client(), public_url(survey), {f"q{question.pk}": "9", "started": kept_start})
        for _ in range(3)
    ]

    assert first.status_code == 302
    assert [r.status_code for r in replayed] == [409, 409, 409]
    assert "These answers were already sent" in replayed[0].content.decode()
    assert Response.objects.count() == 1
    held = HeldSubmissionCount.objects.get(survey=survey)
    assert (held.reason, held.count) == ("repeat", 3)


def test_12_3_a_start_refused_by_a_ceiling_is_still_good_once_the_ceiling_allows(
    survey: Survey, question: Question
) -> None:
    survey.max_responses_per_hour = 1
    survey.save(update_fields=["max_responses_per_hour"])
    post(Client(), public_url(survey), {f"q{question.pk}": "9"})
    start = opened_ago(60)

    refused = post(Client(), public_url(survey), {f"q{question.pk}": "8", "started": start})
    Survey.objects.filter(pk=survey.pk).update(max_responses_per_hour=2)
    later = post(Client(), public_url(survey), {f"q{question.pk}": "8", "started": start})

    assert (refused.status_code, later.status_code) == (429, 302)
    assert Response.objects.count() == 2


def test_12_3_invitation_links_do_not_spend_the_start(survey: Survey, question: Question) -> None:
    start = opened_ago(60)
    invitations = [Invitation.objects.create(survey=survey) for _ in range(2)]

    statuses = [
        post(Client(), invitation_url(i), {f"q{question.pk}": "7", "started": start}).status_code
        for i in invitations
    ]

    assert statuses == [302, 302]
    assert list(Response.objects.values_list("start_nonce", flat=True)) == [None, None]
