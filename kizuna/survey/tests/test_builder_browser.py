"""The builder in real Chromium: htmx reordering without a page load, per-type settings."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Page, expect

from kizuna.survey.models import Question, Survey
from kizuna.testing.personas import PASSWORD


def sign_in(page: Page, live_server: Any, email: str) -> None:
    page.goto(f"{live_server.url}/accounts/sign-in/")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/(crm|survey)/$"))


def test_moving_a_question_up_with_htmx_updates_the_list_in_place(
    page: Page, live_server: Any, survey: Survey, ada_client: Any
) -> None:
    for position, text in enumerate(["First question", "Second question"]):
        Question.objects.create(survey=survey, kind="short_text", text=text, position=position)
    sign_in(page, live_server, "ada@example.com")
    page.goto(f"{live_server.url}/survey/surveys/{survey.pk}/")
    page.evaluate("window.notReloaded = true")

    second = page.locator(".question", has_text="Second question")
    second.get_by_role("button", name="Move up").click()

    expect(page.locator(".question-list .question-text").first).to_have_text("Second question")
    assert page.evaluate("window.notReloaded") is True  # swapped by htmx, no page load
    assert list(survey.questions.order_by("position", "id").values_list("text", flat=True)) == [
        "Second question",
        "First question",
    ]


def test_question_form_shows_only_the_settings_of_the_chosen_type(
    page: Page, live_server: Any, survey: Survey, ada_client: Any
) -> None:
    sign_in(page, live_server, "ada@example.com")
    page.goto(f"{live_server.url}/survey/surveys/{survey.pk}/questions/new/?kind=number")
    expect(page.get_by_label("Minimum value")).to_be_visible()
    expect(page.get_by_label("Choices")).to_be_hidden()

    page.get_by_label("Type").select_option("matrix")
    expect(page.get_by_label("Scale (columns)")).to_be_visible()
    expect(page.get_by_label("Minimum value")).to_be_hidden()

    page.locator("textarea[name=text]").fill("Rate our service")
    page.locator("textarea[name=rows]").fill("Speed\nPrice")
    page.get_by_label("Scale (columns)").fill("Bad\nGood")
    page.get_by_role("button", name="Save question").click()

    expect(page.get_by_role("link", name="Rate our service")).to_be_visible()
    question = survey.questions.get()
    assert [c["label"] for c in question.options["columns"]] == ["Bad", "Good"]
