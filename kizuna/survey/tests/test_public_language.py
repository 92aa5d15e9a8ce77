"""The language of the public pages' chrome: the survey's own, unless the respondent switches.

The chrome is what Kizuna writes around the author's text (buttons, "(required)", errors,
"Page x of y", the rating scale's ends, the notices). The author's text stays as written.
"""

from __future__ import annotations

import datetime

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from kizuna.config import Rate
from kizuna.survey.models import Invitation, Response, Survey
from kizuna.survey.tests.respondent import add_question, one_page_survey, post, two_page_survey


def url_of(survey: Survey) -> str:
    return reverse("survey_public:survey", args=[survey.public_id])


def invitation_url(invitation: Invitation) -> str:
    return reverse("survey_public:invitation", args=[invitation.token])


def written_in(survey: Survey, language: str) -> Survey:
    survey.language = language
    survey.save(update_fields=["language"])
    return survey


def switch_to(client: Client, language: str, url: str) -> None:
    """What the switcher at the top of every public page does."""
    switched = client.post(reverse("identity:set-language"), {"language": language, "next": url})
    assert switched.status_code == 302
    assert switched["Location"] == url


def test_an_english_survey_speaks_english_to_a_japanese_browser(
    survey: Survey, anonymous_client: Client
) -> None:
    written_in(survey, "en")
    two_page_survey(survey)
    url = url_of(survey)

    first = anonymous_client.get(url, HTTP_ACCEPT_LANGUAGE="ja").content.decode()
    second = anonymous_client.get(f"{url}?page=2", HTTP_ACCEPT_LANGUAGE="ja").content.decode()

    assert '<html lang="en">' in first
    assert "Page 1 of 2" in first
    assert ">Next<" in first and "(required)" in first
    assert "Your name" in first
    assert ">Submit<" in second and ">Back<" in second
    assert "1 = Poor" in second and "5 = Excellent" in second
    for japanese in ["次へ", "送信", "(必須)", "ページ目", "1 = 悪い"]:
        assert japanese not in first + second


def test_a_japanese_survey_speaks_japanese_to_an_english_browser(
    survey: Survey, anonymous_client: Client
) -> None:
    written_in(survey, "ja")
    two_page_survey(survey)
    url = url_of(survey)

    first = anonymous_client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    second = anonymous_client.get(f"{url}?page=2", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert '<html lang="ja">' in first
    assert "2ページ中1ページ目" in first.replace(" ", "")  # "Page 1 of 2"
    assert ">次へ<" in first and "(必須)" in first
    assert "Your name" in first  # the author's text as written
    assert ">送信<" in second and ">戻る<" in second
    assert "1 = 悪い" in second and "5 = とても良い" in second
    for english in [">Next<", ">Submit<", "(required)", "Page 1 of 2", "1 = Poor"]:
        assert english not in first + second


@pytest.mark.parametrize(
    ("language", "browser", "message"),
    [("en", "ja", "Enter a number."), ("ja", "en", "数値を入力してください。")],
)
def test_answer_errors_are_in_the_surveys_language(
    survey: Survey, anonymous_client: Client, language: str, browser: str, message: str
) -> None:
    question = one_page_survey(written_in(survey, language), "number")

    page = post(
        anonymous_client, url_of(survey), {f"q{question.pk}": "abc"}, HTTP_ACCEPT_LANGUAGE=browser
    )

    assert page.status_code == 200
    assert message in page.content.decode()
    assert Response.objects.count() == 0


@pytest.mark.parametrize(
    ("language", "browser", "default"),
    [("en", "ja", "Your response has been recorded."), ("ja", "en", "回答を受け付けました")],
)
def test_the_default_thank_you_is_in_the_surveys_language(
    survey: Survey, anonymous_client: Client, language: str, browser: str, default: str
) -> None:
    written_in(survey, language)
    url = reverse("survey_public:done", args=[survey.public_id])

    html = anonymous_client.get(url, HTTP_ACCEPT_LANGUAGE=browser).content.decode()

    assert f'<html lang="{language}">' in html
    assert default in html


def test_the_authors_thank_you_is_shown_as_written_whatever_the_language(
    survey: Survey, anonymous_client: Client
) -> None:
    survey.thank_you_message = "どうもありがとう!"
    survey.save(update_fields=["thank_you_message"])
    url = reverse("survey_public:done", args=[survey.public_id])

    html = anonymous_client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert "どうもありがとう!" in html
    assert "Your response has been recorded." not in html


def test_a_closed_survey_says_so_in_its_language(survey: Survey, anonymous_client: Client) -> None:
    one_page_survey(written_in(survey, "ja"), "short_text")
    survey.is_open = False
    survey.save(update_fields=["is_open"])

    page = anonymous_client.get(url_of(survey), HTTP_ACCEPT_LANGUAGE="en")

    assert page.status_code == 410
    assert "このアンケートは受付を終了しました" in page.content.decode()


def test_invitation_pages_speak_the_surveys_language(
    survey: Survey, anonymous_client: Client
) -> None:
    question = one_page_survey(written_in(survey, "ja"), "short_text")
    invitation = Invitation.objects.create(survey=survey, recipient_reference="crm:lead:7")
    url = invitation_url(invitation)

    form = anonymous_client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    sent = post(anonymous_client, url, {f"q{question.pk}": "はい"}, HTTP_ACCEPT_LANGUAGE="en")
    done = anonymous_client.get(sent["Location"], HTTP_ACCEPT_LANGUAGE="en").content.decode()
    answered = anonymous_client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert ">送信<" in form
    assert sent.status_code == 302
    assert "回答を受け付けました" in done
    assert "このアンケートには回答済みです" in answered
    assert Response.objects.get().language == "ja"


def test_an_expired_invitation_says_so_in_the_surveys_language(
    survey: Survey, anonymous_client: Client
) -> None:
    one_page_survey(written_in(survey, "en"), "short_text")
    invitation = Invitation.objects.create(
        survey=survey,
        recipient_reference="crm:lead:8",
        expires_at=timezone.now() - datetime.timedelta(days=1),
    )

    page = anonymous_client.get(invitation_url(invitation), HTTP_ACCEPT_LANGUAGE="ja")

    assert page.status_code == 410
    assert "This link has expired" in page.content.decode()


@override_settings(KIZUNA_SURVEY_SUBMIT_RATE=Rate(1, 600))
def test_the_429_page_is_in_the_surveys_language(survey: Survey, anonymous_client: Client) -> None:
    question = one_page_survey(written_in(survey, "ja"), "short_text")
    post(anonymous_client, url_of(survey), {f"q{question.pk}": "one"})

    refused = post(
        anonymous_client, url_of(survey), {f"q{question.pk}": "two"}, HTTP_ACCEPT_LANGUAGE="en"
    )

    assert refused.status_code == 429
    assert (
        "お使いのネットワークから短時間に多くの回答が送信されました。" in refused.content.decode()
    )
    assert Response.objects.count() == 1


@pytest.mark.parametrize("link", ["shared", "invitation"])
def test_the_413_page_is_in_the_surveys_language(survey: Survey, link: str) -> None:
    question = one_page_survey(written_in(survey, "ja"), "long_text")
    url = url_of(survey)
    if link == "invitation":
        invitation = Invitation.objects.create(survey=survey, recipient_reference="crm:lead:9")
        url = invitation_url(invitation)
    client = Client(enforce_csrf_checks=True)
    client.get(url)
    token = client.cookies["csrftoken"].value

    page = post(
        client,
        url,
        {"csrfmiddlewaretoken": token, f"q{question.pk}": "x" * 3_000_000},
        HTTP_ACCEPT_LANGUAGE="en",
    )

    assert page.status_code == 413
    assert "回答が長すぎて送信できません" in page.content.decode()
    assert Response.objects.count() == 0


# --- the respondent's own choice wins -----------------------------------------------------------


def test_a_respondent_who_switches_to_japanese_gets_japanese_on_an_english_survey(
    survey: Survey, anonymous_client: Client
) -> None:
    question = one_page_survey(written_in(survey, "en"), "number", text="How many?")
    url = url_of(survey)
    switch_to(anonymous_client, "ja", url)

    form = anonymous_client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    error = post(anonymous_client, url, {f"q{question.pk}": "abc"}, HTTP_ACCEPT_LANGUAGE="en")
    sent = post(anonymous_client, url, {f"q{question.pk}": "3"}, HTTP_ACCEPT_LANGUAGE="en")
    done = anonymous_client.get(sent["Location"], HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert '<html lang="ja">' in form
    assert ">送信<" in form and "(必須)" in form
    assert 'class="survey-form" lang="en"' in form  # the author's text keeps its language
    assert "How many?" in form
    assert "数値を入力してください。" in error.content.decode()
    assert "回答を受け付けました" in done
    assert Response.objects.get().language == "ja"


def test_a_respondent_who_switches_to_english_gets_english_on_a_japanese_invitation(
    survey: Survey, anonymous_client: Client
) -> None:
    one_page_survey(written_in(survey, "ja"), "rating")
    invitation = Invitation.objects.create(survey=survey, recipient_reference="crm:lead:10")
    url = invitation_url(invitation)
    switch_to(anonymous_client, "en", url)

    form = anonymous_client.get(url, HTTP_ACCEPT_LANGUAGE="ja").content.decode()

    assert '<html lang="en">' in form
    assert ">Submit<" in form and "1 = Poor" in form
    assert anonymous_client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "en"


def test_the_switcher_shows_the_language_the_page_is_in(
    survey: Survey, anonymous_client: Client
) -> None:
    one_page_survey(written_in(survey, "en"), "short_text")

    html = anonymous_client.get(url_of(survey), HTTP_ACCEPT_LANGUAGE="ja").content.decode()

    assert '<option value="en" lang="en" selected>' in html
    assert '<option value="ja" lang="ja">' in html


def test_a_survey_answered_in_its_language_records_that_language(
    survey: Survey, anonymous_client: Client
) -> None:
    question = add_question(written_in(survey, "en"), "short_text", "Name?")

    sent = post(
        anonymous_client, url_of(survey), {f"q{question.pk}": "Ken"}, HTTP_ACCEPT_LANGUAGE="ja"
    )

    assert sent.status_code == 302
    assert Response.objects.get().language == "en"
