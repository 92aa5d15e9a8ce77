"""Real Chromium: the public form works on a phone without JavaScript, results pass the CSP."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client, override_settings

from kizuna.survey.models import Answer, Response, Survey
from kizuna.survey.public import services as public_services
from kizuna.survey.tests.respondent import add_question, two_page_survey

PHONE = {"width": 390, "height": 844}


# The scripted respondent answers faster than any person (KIZUNA_SURVEY_MIN_SECONDS).
@override_settings(KIZUNA_SURVEY_MIN_SECONDS=0)
@pytest.mark.django_db(transaction=True)
def test_a_respondent_answers_two_pages_on_a_phone_without_javascript(
    browser: Any, live_server: Any, survey: Survey
) -> None:
    survey.language = "ja"
    survey.save(update_fields=["language"])
    name, rating = two_page_survey(survey)
    nps = add_question(survey, "nps", "Recommend us?", section=rating.section)
    # An English phone: the page still speaks the survey's language.
    context = browser.new_context(java_script_enabled=False, viewport=PHONE, locale="en-US")
    problems: list[str] = []
    page = context.new_page()
    page.on("console", lambda message: problems.append(message.text))
    try:
        page.goto(f"{live_server.url}/s/{survey.public_id}/")
        assert page.locator("html").get_attribute("lang") == "ja"
        page.get_by_role("button", name="次へ").click()
        assert page.locator(".question-errors").inner_text() == "この質問は回答必須です。"

        page.locator(f"#q{name.pk}").fill("山田 花子")
        page.get_by_role("button", name="次へ").click()
        page.locator(f"input[name=q{rating.pk}][value='4']").check(force=True)
        page.get_by_role("button", name="戻る").click()
        assert page.locator(f"#q{name.pk}").input_value() == "山田 花子"
        page.get_by_role("button", name="次へ").click()
        assert page.locator(f"input[name=q{rating.pk}][value='4']").is_checked()
        page.locator(f"input[name=q{nps.pk}][value='9']").check(force=True)
        page.get_by_role("button", name="送信").click()

        assert "回答を受け付けました" in page.locator("main").inner_text()
    finally:
        context.close()
    response = Response.objects.get(survey=survey)
    assert {a.question_id: a.value for a in Answer.objects.filter(response=response)} == {
        name.pk: "山田 花子",
        rating.pk: 4,
        nps.pk: 9,
    }
    assert [p for p in problems if "Content Security Policy" in p] == []


@pytest.mark.django_db(transaction=True)
def test_the_results_charts_render_under_the_csp_and_fit_a_phone(
    browser: Any, live_server: Any, survey: Survey, ada: Any, account: Any
) -> None:
    fruit = add_question(survey, "single_choice", "Favourite fruit?")
    score = add_question(survey, "nps", "Recommend us?")
    for key, value in [("a", 10), ("b", 3), ("a", 8)]:
        public_services.submit_response(
            survey=survey, invitation=None, answers={fruit: key, score: value}, language="en"
        )
    client = Client()
    client.force_login(ada)
    context = browser.new_context(viewport=PHONE, locale="en-US")
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    problems: list[str] = []
    page = context.new_page()
    page.on("console", lambda message: problems.append(message.text))
    try:
        page.goto(f"{live_server.url}/survey/results/{survey.pk}/")
        assert page.locator("svg.bar-chart").count() == 1
        assert page.locator("svg.column-chart").count() == 2  # over time, NPS
        bar_fill = page.locator("svg.bar-chart .chart-bar").first.evaluate(
            "element => getComputedStyle(element).fill"
        )
        promoter_fill = page.locator("svg.column-chart .promoter .chart-bar").first.evaluate(
            "element => getComputedStyle(element).fill"
        )
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
    finally:
        context.close()
    assert bar_fill == "rgb(11, 110, 153)"  # the stylesheet styled the SVG
    assert promoter_fill == "rgb(3, 152, 85)"
    assert overflow <= 0
    assert [p for p in problems if "Content Security Policy" in p] == []


@pytest.mark.django_db(transaction=True)
def test_12_3_people_and_assistive_technology_never_meet_the_honeypot(
    browser: Any, live_server: Any, survey: Survey
) -> None:
    question = add_question(survey, "short_text", "Your name", is_required=True)
    context = browser.new_context(viewport=PHONE, locale="en-US")
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/s/{survey.public_id}/")
        box = page.locator("#website").bounding_box()
        textboxes = page.get_by_role("textbox").count()
        page.locator(f"#q{question.pk}").focus()
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.name || document.activeElement.id")
    finally:
        context.close()

    assert box is not None
    assert box["x"] + box["width"] <= 0  # drawn off screen
    assert textboxes == 1  # the accessibility tree has only the question's field
    assert focused != "website"  # the keyboard skips it
