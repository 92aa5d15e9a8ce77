"""The public pages (/s/) run a shorter middleware chain than the rest of the site
(settings.PUBLIC_MIDDLEWARE, kizuna/lib/middleware.py, issue 11): they keep every security
header, the CSRF check, the session of a respondent's progress and the language rules."""

from __future__ import annotations

import pytest
from csp.utils import build_policy
from django.test import Client
from django.urls import reverse

from kizuna.survey.models import Invitation, Response, Survey
from kizuna.survey.tests.respondent import one_page_survey, opened_ago, post, two_page_survey

pytestmark = pytest.mark.django_db

SECURITY_HEADERS = (
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Cross-Origin-Opener-Policy",
)


def url_of(survey: Survey) -> str:
    return reverse("survey_public:survey", args=[survey.public_id])


def assert_security_headers(response: object) -> None:
    headers = response.headers  # type: ignore[attr-defined]
    assert headers["Content-Security-Policy"] == build_policy()
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"


def test_the_shared_links_form_sends_every_security_header(
    survey: Survey, anonymous_client: Client
) -> None:
    one_page_survey(survey, "short_text")
    page = anonymous_client.get(url_of(survey))
    assert page.status_code == 200
    assert_security_headers(page)
    assert page.headers["Content-Language"] == "en"
    assert "csrftoken" in page.cookies


def test_a_submission_and_its_thank_you_page_send_every_security_header(
    survey: Survey, anonymous_client: Client
) -> None:
    question = one_page_survey(survey, "short_text")
    stored = post(anonymous_client, url_of(survey), {f"q{question.pk}": "Fine"})
    assert stored.status_code == 302
    assert_security_headers(stored)
    done = anonymous_client.get(stored.url)
    assert done.status_code == 200
    assert_security_headers(done)


def test_an_invitation_page_sends_every_security_header(
    survey: Survey, anonymous_client: Client
) -> None:
    one_page_survey(survey, "short_text")
    invitation = Invitation.objects.create(survey=survey, token="header-test-token")
    page = anonymous_client.get(reverse("survey_public:invitation", args=[invitation.token]))
    assert page.status_code == 200
    assert_security_headers(page)


def test_an_unknown_link_is_a_404_with_every_security_header_in_the_browsers_language(
    anonymous_client: Client,
) -> None:
    page = anonymous_client.get("/s/no-such-survey/", HTTP_ACCEPT_LANGUAGE="ja")
    assert page.status_code == 404
    assert_security_headers(page)
    assert page.headers["Content-Language"] == "ja"


def test_public_pages_send_the_same_security_headers_as_the_rest_of_the_site(
    survey: Survey, anonymous_client: Client
) -> None:
    one_page_survey(survey, "short_text")
    public = anonymous_client.get(url_of(survey))
    sign_in = anonymous_client.get(reverse("identity:login"))
    assert sign_in.status_code == 200
    for header in SECURITY_HEADERS:
        assert public.headers[header] == sign_in.headers[header], header


def test_a_submission_without_the_csrf_token_is_refused_and_nothing_is_stored(
    survey: Survey,
) -> None:
    question = one_page_survey(survey, "short_text")
    browser = Client(enforce_csrf_checks=True)
    assert browser.get(url_of(survey)).status_code == 200  # the CSRF cookie, not the token
    refused = post(browser, url_of(survey), {f"q{question.pk}": "Fine"})
    assert refused.status_code == 403
    assert_security_headers(refused)
    assert Response.objects.count() == 0


def test_a_submission_with_the_forms_csrf_token_is_stored(survey: Survey) -> None:
    question = one_page_survey(survey, "short_text")
    browser = Client(enforce_csrf_checks=True)
    page = browser.get(url_of(survey))
    token = page.cookies["csrftoken"].value
    stored = post(
        browser, url_of(survey), {f"q{question.pk}": "Fine", "csrfmiddlewaretoken": token}
    )
    assert stored.status_code == 302
    assert Response.objects.get().answers.get().value == "Fine"


def test_a_respondents_answers_are_kept_between_pages_in_the_session(
    survey: Survey, anonymous_client: Client
) -> None:
    name, rating = two_page_survey(survey)
    url = url_of(survey)
    moved = anonymous_client.post(
        url, {"page": "1", "action": "next", "started": opened_ago(60), f"q{name.pk}": "Aiko"}
    )
    assert moved.status_code == 302
    assert "sessionid" in moved.cookies
    assert "Aiko" in anonymous_client.get(f"{url}?page=1").content.decode()
    stored = anonymous_client.post(url, {"page": "2", "action": "submit", f"q{rating.pk}": "5"})
    assert stored.status_code == 302
    assert {a.question_id: a.value for a in Response.objects.get().answers.all()} == {
        name.pk: "Aiko",
        rating.pk: 5,
    }


def test_a_signed_in_user_stays_signed_in_across_a_public_page(
    survey: Survey, ada_client: Client
) -> None:
    one_page_survey(survey, "short_text")
    assert ada_client.get(url_of(survey)).status_code == 200
    assert ada_client.get(reverse("survey:home")).status_code == 200
