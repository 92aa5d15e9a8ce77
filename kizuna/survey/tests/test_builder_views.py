"""The survey builder: survey settings, every question kind, sections, reordering, safe edits."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kizuna.survey.models import Answer, Portal, Question, Response, Section, Survey
from kizuna.survey.validation import answer_display


def add_question(client: Client, survey: Survey, **fields: Any) -> Any:
    data = {"kind": "short_text", "text": "Your name?", **fields}
    return client.post(reverse("survey:question-new", args=[survey.pk]), data)


def edit_question(client: Client, question: Question, **fields: Any) -> Any:
    data = {
        "kind": question.kind,
        "text": question.text,
        **fields,
    }
    return client.post(
        reverse("survey:question-edit", args=[question.survey_id, question.pk]), data
    )


def answer(question: Question, value: Any) -> Answer:
    response = Response.objects.create(survey=question.survey)
    return Answer.objects.create(response=response, question=question, value=value)


def keys(question: Question, name: str = "choices") -> list[tuple[str, bool]]:
    question.refresh_from_db()
    return [(item["label"], bool(item.get("archived"))) for item in question.options[name]]


# --- surveys --------------------------------------------------------------------------------


def test_a_member_creates_a_survey_in_a_portal_of_the_account(
    bob_client: Client, portal: Portal
) -> None:
    assert bob_client.get(reverse("survey:survey-new") + f"?portal={portal.pk}").status_code == 200
    response = bob_client.post(
        reverse("survey:survey-new"),
        {
            "title": "お客様アンケート",
            "description": "ご意見をお聞かせください。",
            "portal": portal.pk,
            "language": "ja",
            "thank_you_message": "ありがとうございました。",
            "is_open": "on",
            "closes_at": "2030-01-31T18:00",
            "is_anonymous": "on",
        },
    )
    survey = Survey.objects.get(title="お客様アンケート")
    assert response.status_code == 302
    assert response["Location"] == reverse("survey:survey", args=[survey.pk])
    assert (survey.portal, survey.language, survey.is_open, survey.is_anonymous) == (
        portal,
        "ja",
        True,
        True,
    )
    assert survey.closes_at is not None
    assert timezone.localtime(survey.closes_at).isoformat() == "2030-01-31T18:00:00+09:00"


def test_a_survey_cannot_go_to_another_accounts_portal(
    ada_client: Client, carol_account: Any
) -> None:
    foreign = carol_account.portals.get()
    response = ada_client.post(
        reverse("survey:survey-new"), {"title": "X", "portal": foreign.pk, "language": "en"}
    )
    assert response.status_code == 400
    assert not Survey.objects.filter(title="X").exists()


def test_new_survey_form_with_another_accounts_portal_is_404(
    ada_client: Client, carol_account: Any
) -> None:
    foreign = carol_account.portals.get()
    assert ada_client.get(reverse("survey:survey-new") + f"?portal={foreign.pk}").status_code == 404


def test_survey_without_title_re_renders_with_what_was_typed(
    ada_client: Client, portal: Portal
) -> None:
    response = ada_client.post(
        reverse("survey:survey-new"),
        {"title": "", "description": "kept text", "portal": portal.pk, "language": "en"},
    )
    assert response.status_code == 400
    assert "kept text" in response.content.decode()
    assert Survey.objects.count() == 0


@pytest.mark.parametrize(
    ("persona", "status"), [("ada", 200), ("bob", 200), ("carol", 404), ("anonymous", 302)]
)
def test_builder_page_persona_matrix(
    request: pytest.FixtureRequest, persona: str, status: int, survey: Survey
) -> None:
    client: Client = request.getfixturevalue(f"{persona}_client")
    assert client.get(reverse("survey:survey", args=[survey.pk])).status_code == status
    assert client.get(reverse("survey:survey-edit", args=[survey.pk])).status_code == status
    assert client.get(reverse("survey:survey-delete", args=[survey.pk])).status_code == status
    for kind in ("single_choice", "matrix"):
        url = reverse("survey:question-new", args=[survey.pk]) + f"?kind={kind}"
        assert client.get(url).status_code == status


@pytest.mark.parametrize("persona", ["carol", "anonymous"])
def test_outsiders_cannot_edit_a_survey(
    request: pytest.FixtureRequest, persona: str, survey: Survey, portal: Portal
) -> None:
    client: Client = request.getfixturevalue(f"{persona}_client")
    response = client.post(
        reverse("survey:survey-edit", args=[survey.pk]),
        {"title": "Hacked", "portal": portal.pk, "language": "en"},
    )
    assert response.status_code in {302, 404}
    survey.refresh_from_db()
    assert survey.title == "Customer satisfaction"


def test_editing_survey_settings_closes_it(
    ada_client: Client, survey: Survey, portal: Portal
) -> None:
    response = ada_client.post(
        reverse("survey:survey-edit", args=[survey.pk]),
        {"title": "CSAT", "portal": portal.pk, "language": "en", "thank_you_message": "Thanks!"},
    )
    assert response.status_code == 302
    survey.refresh_from_db()
    assert (survey.title, survey.is_open, survey.thank_you_message) == ("CSAT", False, "Thanks!")
    assert not survey.accepts_responses()


def test_a_survey_without_responses_is_deleted(bob_client: Client, survey: Survey) -> None:
    response = bob_client.post(reverse("survey:survey-delete", args=[survey.pk]))
    assert response.status_code == 302
    assert not Survey.objects.filter(pk=survey.pk).exists()


def test_a_survey_with_responses_is_never_deleted(ada_client: Client, survey: Survey) -> None:
    question = Question.objects.create(survey=survey, kind="short_text", text="Name?")
    answer(question, "Ada")
    page = ada_client.get(reverse("survey:survey-delete", args=[survey.pk])).content.decode()
    assert "cannot be deleted" in page
    response = ada_client.post(reverse("survey:survey-delete", args=[survey.pk]), follow=True)
    assert "This survey has responses, so it cannot be deleted" in response.content.decode()
    assert Survey.objects.filter(pk=survey.pk).exists()


@pytest.mark.parametrize(("persona", "status"), [("carol", 404), ("anonymous", 302)])
def test_outsiders_cannot_delete_a_survey(
    request: pytest.FixtureRequest, persona: str, status: int, survey: Survey
) -> None:
    client: Client = request.getfixturevalue(f"{persona}_client")
    assert client.post(reverse("survey:survey-delete", args=[survey.pk])).status_code == status
    assert Survey.objects.filter(pk=survey.pk).exists()


# --- every question kind --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "options"),
    [
        ({"kind": "single_choice", "choices": "Yes\nNo"}, {"choices": ["Yes", "No"]}),
        (
            {"kind": "multiple_choice", "choices": "A\nB\nC", "min_picks": "1", "max_picks": "2"},
            {"choices": ["A", "B", "C"], "min_picks": 1, "max_picks": 2},
        ),
        ({"kind": "dropdown", "choices": "東京\n大阪\n\n東京"}, {"choices": ["東京", "大阪"]}),
        ({"kind": "short_text"}, {}),
        ({"kind": "long_text"}, {}),
        ({"kind": "number", "min": "0", "max": "99.5"}, {"min": 0, "max": 99.5}),
        ({"kind": "email"}, {}),
        ({"kind": "date"}, {}),
        ({"kind": "rating"}, {}),
        ({"kind": "nps"}, {}),
        (
            {"kind": "matrix", "rows": "Speed\nPrice", "columns": "Bad\nOK\nGood"},
            {"rows": ["Speed", "Price"], "columns": ["Bad", "OK", "Good"]},
        ),
    ],
)
def test_every_question_kind_can_be_added(
    bob_client: Client, survey: Survey, fields: dict[str, str], options: dict[str, Any]
) -> None:
    response = add_question(
        bob_client, survey, text="Q?", help_text="Help", is_required="on", **fields
    )
    assert response.status_code == 302
    question = survey.questions.get()
    assert (question.kind, question.text, question.help_text, question.is_required) == (
        fields["kind"],
        "Q?",
        "Help",
        True,
    )
    stored = {
        name: [item["label"] for item in value] if isinstance(value, list) else value
        for name, value in question.options.items()
    }
    assert stored == options


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"kind": "single_choice", "choices": "Only one"}, "choices", "Give at least two choices"),
        (
            {"kind": "multiple_choice", "choices": "A\nB", "min_picks": "2", "max_picks": "1"},
            "max_picks",
            "The maximum must not be below the minimum.",
        ),
        (
            {"kind": "multiple_choice", "choices": "A\nB", "max_picks": "3"},
            "max_picks",
            "The maximum is more than the number of choices.",
        ),
        ({"kind": "number", "min": "5", "max": "1"}, "max", "The maximum must not be below"),
        ({"kind": "number", "min": "abc"}, "min", "Enter a number."),
        ({"kind": "matrix", "rows": "", "columns": "A\nB"}, "rows", "Give at least one row."),
        ({"kind": "matrix", "rows": "R", "columns": "A"}, "columns", "Give at least two columns."),
        ({"kind": "teleport"}, "kind", "Select a valid choice."),
        ({"kind": "short_text", "text": ""}, "text", "This field is required."),
    ],
)
def test_bad_question_settings_are_refused_with_a_clear_error(
    ada_client: Client, survey: Survey, fields: dict[str, str], field: str, message: str
) -> None:
    response = add_question(ada_client, survey, **fields)
    assert response.status_code == 400
    assert any(message in error for error in response.context["form"].errors[field])
    assert survey.questions.count() == 0


def test_question_errors_are_shown_in_japanese(ada_client: Client, survey: Survey) -> None:
    response = ada_client.post(
        reverse("survey:question-new", args=[survey.pk]),
        {"kind": "single_choice", "text": "Q", "choices": "One"},
        headers={"accept-language": "ja"},
    )
    assert "選択肢を2つ以上" in response.content.decode()


@pytest.mark.parametrize("persona", ["carol", "anonymous"])
def test_outsiders_cannot_add_questions(
    request: pytest.FixtureRequest, persona: str, survey: Survey
) -> None:
    client: Client = request.getfixturevalue(f"{persona}_client")
    response = add_question(client, survey)
    assert response.status_code == (404 if persona == "carol" else 302)
    assert survey.questions.count() == 0


# --- safe edits --------------------------------------------------------------------------------


@pytest.fixture
def choice_question(ada_client: Client, survey: Survey) -> Question:
    add_question(
        ada_client, survey, kind="single_choice", text="Fruit?", choices="Apple\nBanana\nCherry"
    )
    return survey.questions.get()


def test_renaming_a_choice_keeps_its_key_and_its_answers(
    ada_client: Client, choice_question: Question
) -> None:
    banana = choice_question.options["choices"][1]["key"]
    answer(choice_question, banana)
    edit_question(ada_client, choice_question, choices="Apple\nBanana split\nCherry")
    choice_question.refresh_from_db()
    assert choice_question.options["choices"][1]["key"] == banana
    assert answer_display(choice_question, banana) == "Banana split"


def test_reordering_choices_keeps_every_key(ada_client: Client, choice_question: Question) -> None:
    before = {c["label"]: c["key"] for c in choice_question.options["choices"]}
    edit_question(ada_client, choice_question, choices="Cherry\nApple\nBanana")
    choice_question.refresh_from_db()
    assert [(c["label"], c["key"]) for c in choice_question.options["choices"]] == [
        ("Cherry", before["Cherry"]),
        ("Apple", before["Apple"]),
        ("Banana", before["Banana"]),
    ]


def test_a_removed_choice_with_answers_is_archived_and_the_user_is_told(
    ada_client: Client, choice_question: Question
) -> None:
    cherry = choice_question.options["choices"][2]["key"]
    answer(choice_question, cherry)
    url = reverse("survey:question-edit", args=[choice_question.survey_id, choice_question.pk])
    response = ada_client.post(
        url, {"kind": "single_choice", "text": "Fruit?", "choices": "Apple\nBanana"}, follow=True
    )
    assert "archived instead of deleted: Cherry" in response.content.decode()
    assert keys(choice_question) == [("Apple", False), ("Banana", False), ("Cherry", True)]
    assert answer_display(choice_question, cherry) == "Cherry"


def test_a_removed_choice_without_answers_is_dropped(
    ada_client: Client, choice_question: Question
) -> None:
    edit_question(ada_client, choice_question, choices="Apple\nCherry")
    assert keys(choice_question) == [("Apple", False), ("Cherry", False)]


def test_adding_back_an_archived_choice_restores_its_key(
    ada_client: Client, choice_question: Question
) -> None:
    cherry = choice_question.options["choices"][2]["key"]
    answer(choice_question, cherry)
    edit_question(ada_client, choice_question, choices="Apple\nBanana")
    edit_question(ada_client, choice_question, choices="Apple\nBanana\nCherry")
    choice_question.refresh_from_db()
    assert [(c["key"], bool(c.get("archived"))) for c in choice_question.options["choices"]][2] == (
        cherry,
        False,
    )


def test_a_question_with_answers_cannot_change_to_an_incompatible_kind(
    ada_client: Client, choice_question: Question
) -> None:
    answer(choice_question, choice_question.options["choices"][0]["key"])
    response = edit_question(ada_client, choice_question, kind="number")
    assert response.status_code == 400
    assert "already has answers, so its type cannot change to Number" in response.content.decode()
    choice_question.refresh_from_db()
    assert choice_question.kind == "single_choice"


def test_a_question_with_answers_may_switch_between_single_choice_and_dropdown(
    ada_client: Client, choice_question: Question
) -> None:
    apple = choice_question.options["choices"][0]["key"]
    answer(choice_question, apple)
    response = edit_question(
        ada_client, choice_question, kind="dropdown", choices="Apple\nBanana\nCherry"
    )
    assert response.status_code == 302
    choice_question.refresh_from_db()
    assert choice_question.kind == "dropdown"
    assert answer_display(choice_question, apple) == "Apple"


def test_a_question_without_answers_may_change_kind(
    ada_client: Client, choice_question: Question
) -> None:
    edit_question(ada_client, choice_question, kind="nps")
    choice_question.refresh_from_db()
    assert (choice_question.kind, choice_question.options) == ("nps", {})


def test_matrix_rows_with_answers_are_archived_when_removed(
    ada_client: Client, survey: Survey
) -> None:
    add_question(
        ada_client, survey, kind="matrix", text="Rate", rows="Speed\nPrice", columns="Bad\nGood"
    )
    question = survey.questions.get()
    speed = question.options["rows"][0]["key"]
    good = question.options["columns"][1]["key"]
    answer(question, {speed: good})
    edit_question(ada_client, question, rows="Price", columns="Bad\nGood\nGreat")
    assert keys(question, "rows") == [("Price", False), ("Speed", True)]
    assert keys(question, "columns") == [("Bad", False), ("Good", False), ("Great", False)]
    assert answer_display(question, {speed: good}) == "Speed: Good"


def test_deleting_a_question_without_answers_removes_it(
    bob_client: Client, choice_question: Question
) -> None:
    url = reverse("survey:question-delete", args=[choice_question.survey_id, choice_question.pk])
    assert bob_client.post(url).status_code == 302
    assert not Question.objects.filter(pk=choice_question.pk).exists()


def test_deleting_a_question_with_answers_archives_it_and_says_so(
    ada_client: Client, choice_question: Question
) -> None:
    answer(choice_question, choice_question.options["choices"][0]["key"])
    url = reverse("survey:question-delete", args=[choice_question.survey_id, choice_question.pk])
    response = ada_client.post(url, follow=True)
    assert "archived instead of deleted" in response.content.decode()
    choice_question.refresh_from_db()
    assert choice_question.is_archived
    assert Answer.objects.filter(question=choice_question).count() == 1


def test_an_archived_question_can_be_restored(
    ada_client: Client, choice_question: Question
) -> None:
    choice_question.is_archived = True
    choice_question.save()
    url = reverse("survey:question-restore", args=[choice_question.survey_id, choice_question.pk])
    assert ada_client.post(url).status_code == 302
    choice_question.refresh_from_db()
    assert not choice_question.is_archived


@pytest.mark.parametrize(("persona", "status"), [("carol", 404), ("anonymous", 302)])
def test_outsiders_cannot_edit_delete_restore_or_move_questions(
    request: pytest.FixtureRequest, persona: str, status: int, choice_question: Question
) -> None:
    client: Client = request.getfixturevalue(f"{persona}_client")
    args = [choice_question.survey_id, choice_question.pk]
    assert client.get(reverse("survey:question-edit", args=args)).status_code == status
    response = edit_question(client, choice_question, text="Hacked", choices="X\nY")
    assert response.status_code == status
    assert client.post(reverse("survey:question-delete", args=args)).status_code == status
    assert client.post(reverse("survey:question-restore", args=args)).status_code == status
    move = client.post(reverse("survey:question-move", args=args), {"direction": "up"})
    assert move.status_code == status
    choice_question.refresh_from_db()
    assert (choice_question.text, choice_question.is_archived) == ("Fruit?", False)


def test_a_question_of_another_survey_is_404_under_this_survey(
    ada_client: Client, choice_question: Question, portal: Portal
) -> None:
    other = Survey.objects.create(portal=portal, title="Other")
    url = reverse("survey:question-edit", args=[other.pk, choice_question.pk])
    assert ada_client.get(url).status_code == 404


# --- reordering and sections ------------------------------------------------------------------


def texts(survey: Survey) -> list[str]:
    return list(
        survey.questions.filter(is_archived=False)
        .order_by("position", "id")
        .values_list("text", flat=True)
    )


def test_questions_move_up_and_down_without_javascript(ada_client: Client, survey: Survey) -> None:
    for text in ("One", "Two", "Three"):
        add_question(ada_client, survey, text=text)
    three = survey.questions.get(text="Three")
    url = reverse("survey:question-move", args=[survey.pk, three.pk])
    response = ada_client.post(url, {"direction": "up"})
    assert response.status_code == 302
    assert texts(survey) == ["One", "Three", "Two"]
    ada_client.post(url, {"direction": "up"})
    ada_client.post(url, {"direction": "up"})  # already first: stays
    assert texts(survey) == ["Three", "One", "Two"]
    ada_client.post(url, {"direction": "down"})
    assert texts(survey) == ["One", "Three", "Two"]


def test_moving_with_htmx_answers_the_page_list_fragment(
    bob_client: Client, survey: Survey
) -> None:
    for text in ("One", "Two"):
        add_question(bob_client, survey, text=text)
    two = survey.questions.get(text="Two")
    response = bob_client.post(
        reverse("survey:question-move", args=[survey.pk, two.pk]),
        {"direction": "up"},
        headers={"hx-request": "true"},
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert body.startswith('<div id="survey-pages"')
    assert body.index("Two") < body.index("One")
    assert texts(survey) == ["Two", "One"]


def test_sections_are_pages_and_questions_move_between_them(
    ada_client: Client, survey: Survey
) -> None:
    add_question(ada_client, survey, text="Intro question")
    response = ada_client.post(
        reverse("survey:section-new", args=[survey.pk]), {"title": "About you", "description": ""}
    )
    assert response.status_code == 302
    section = survey.sections.get()
    question = survey.questions.get()
    edit_question(ada_client, question, section=section.pk)
    question.refresh_from_db()
    assert question.section == section
    page = ada_client.get(reverse("survey:survey", args=[survey.pk])).content.decode()
    assert "Page 1: About you" in page


def test_sections_are_renamed_moved_and_deleted(ada_client: Client, survey: Survey) -> None:
    first = Section.objects.create(survey=survey, title="First", position=0)
    second = Section.objects.create(survey=survey, title="Second", position=1)
    Question.objects.create(survey=survey, section=second, kind="email", text="Mail?")
    url = reverse("survey:section-edit", args=[survey.pk, first.pk])
    assert ada_client.post(url, {"title": "Start", "description": "Hi"}).status_code == 302
    move = reverse("survey:section-move", args=[survey.pk, second.pk])
    assert ada_client.post(move, {"direction": "up"}).status_code == 302
    assert list(survey.sections.values_list("title", flat=True)) == ["Second", "Start"]
    delete = reverse("survey:section-delete", args=[survey.pk, second.pk])
    response = ada_client.post(delete, follow=True)
    assert "moved to the first page" in response.content.decode()
    assert list(survey.sections.values_list("title", flat=True)) == ["Start"]
    assert survey.questions.get().section is None


@pytest.mark.parametrize(("persona", "status"), [("carol", 404), ("anonymous", 302)])
def test_outsiders_cannot_touch_sections(
    request: pytest.FixtureRequest, persona: str, status: int, survey: Survey
) -> None:
    section = Section.objects.create(survey=survey, title="Keep")
    client: Client = request.getfixturevalue(f"{persona}_client")
    args = [survey.pk, section.pk]
    assert client.get(reverse("survey:section-edit", args=args)).status_code == status
    assert (
        client.post(reverse("survey:section-edit", args=args), {"title": "X"}).status_code == status
    )
    assert client.post(reverse("survey:section-move", args=args)).status_code == status
    assert client.post(reverse("survey:section-delete", args=args)).status_code == status
    new = client.post(reverse("survey:section-new", args=[survey.pk]), {"title": "New"})
    assert new.status_code == status
    assert list(survey.sections.values_list("title", flat=True)) == ["Keep"]


def test_a_member_manages_sections_too(bob_client: Client, survey: Survey) -> None:
    response = bob_client.post(reverse("survey:section-new", args=[survey.pk]), {"title": "Bob's"})
    assert response.status_code == 302
    assert list(survey.sections.values_list("title", flat=True)) == ["Bob's"]


def test_new_survey_form_offers_only_the_current_accounts_portals(
    carol_client: Client, portal: Portal
) -> None:
    response = carol_client.get(reverse("survey:survey-new"))
    assert response.status_code == 200
    offered = list(response.context["form"].fields["portal"].queryset)
    assert [p.name for p in offered] == ["My portal"]
    assert portal not in offered


def test_new_survey_form_without_an_account_is_404(user_client: Client) -> None:
    assert user_client.get(reverse("survey:survey-new")).status_code == 404


def test_new_survey_form_signed_out_redirects(anonymous_client: Client) -> None:
    assert anonymous_client.get(reverse("survey:survey-new")).status_code == 302


@pytest.mark.parametrize(
    ("url_name", "heading"),
    [
        ("survey:home", "<h1>アンケート</h1>"),
        ("survey:members", "<h1>メンバー</h1>"),
        ("survey:portals", "<h1>ポータル</h1>"),
        ("survey:survey-new", "<h1>新しいアンケート</h1>"),
        ("survey:account-new", "<h1>新しいアンケートアカウント</h1>"),
    ],
)
def test_account_pages_are_in_japanese(ada_client: Client, url_name: str, heading: str) -> None:
    response = ada_client.get(reverse(url_name), headers={"accept-language": "ja"})
    assert heading in response.content.decode()


def test_builder_pages_are_in_japanese(ada_client: Client, survey: Survey) -> None:
    section = Section.objects.create(survey=survey, title="基本情報")
    question = Question.objects.create(
        survey=survey, section=section, kind="nps", text="おすすめ度", is_required=True
    )
    pages = {
        reverse("survey:survey", args=[survey.pk]): ["ページ 1: 基本情報", "質問を追加", "必須"],
        reverse("survey:survey-edit", args=[survey.pk]): ["アンケートの設定", "締め切り日時"],
        reverse("survey:question-edit", args=[survey.pk, question.pk]): [
            "質問を編集",
            "ネットプロモータースコア（0〜10）",
        ],
        reverse("survey:section-edit", args=[survey.pk, section.pk]): ["セクションを編集"],
        reverse("survey:survey-delete", args=[survey.pk]): ["アンケートを削除"],
    }
    for url, texts in pages.items():
        body = ada_client.get(url, headers={"accept-language": "ja"}).content.decode()
        for text in texts:
            assert text in body, (url, text)


@pytest.mark.parametrize(
    ("language", "help_text"),
    [
        (
            "en",
            "The language of the buttons and messages on the survey's pages. "
            "Respondents can switch to another language there.",
        ),
        (
            "ja",
            "アンケートのページに表示されるボタンやメッセージの言語です。"
            "回答者はページ上で別の言語に切り替えることもできます。",
        ),
    ],
)
def test_the_language_setting_says_it_sets_the_public_pages_language_and_respondents_may_switch(
    ada_client: Client, survey: Survey, language: str, help_text: str
) -> None:
    body = ada_client.get(
        reverse("survey:survey-edit", args=[survey.pk]), headers={"accept-language": language}
    ).content.decode()

    assert help_text in body


def test_builder_lists_each_questions_choices_range_or_grid(
    ada_client: Client, survey: Survey
) -> None:
    add_question(
        ada_client, survey, kind="multiple_choice", text="Pick", choices="A\nB", max_picks="2"
    )
    add_question(ada_client, survey, kind="number", text="Age", min="18")
    add_question(ada_client, survey, kind="matrix", text="Grid", rows="R1\nR2", columns="C1\nC2")
    body = ada_client.get(reverse("survey:survey", args=[survey.pk])).content.decode()
    assert "A · B (picks: 0–2)" in body
    assert "range: 18–∞" in body
    assert "R1 · R2 × C1 · C2" in body


def test_a_plain_member_uses_every_builder_action(
    bob_client: Client, survey: Survey, portal: Portal
) -> None:
    edited = bob_client.post(
        reverse("survey:survey-edit", args=[survey.pk]),
        {"title": "Bob's title", "portal": portal.pk, "language": "ja", "is_open": "on"},
    )
    assert edited.status_code == 302
    first = Section.objects.create(survey=survey, title="One", position=0)
    second = Section.objects.create(survey=survey, title="Two", position=1)
    question = Question.objects.create(survey=survey, kind="email", text="Mail?", is_archived=True)
    args = [survey.pk, question.pk]
    assert bob_client.post(reverse("survey:question-restore", args=args)).status_code == 302
    assert bob_client.get(reverse("survey:question-edit", args=args)).status_code == 200
    section_args = [survey.pk, second.pk]
    assert bob_client.get(reverse("survey:section-edit", args=section_args)).status_code == 200
    assert (
        bob_client.post(
            reverse("survey:section-edit", args=section_args), {"title": "Zwei"}
        ).status_code
        == 302
    )
    assert (
        bob_client.post(
            reverse("survey:section-move", args=section_args), {"direction": "up"}
        ).status_code
        == 302
    )
    assert (
        bob_client.post(reverse("survey:section-delete", args=[survey.pk, first.pk])).status_code
        == 302
    )
    survey.refresh_from_db()
    question.refresh_from_db()
    assert (survey.title, survey.language, question.is_archived) == ("Bob's title", "ja", False)
    assert list(survey.sections.values_list("title", flat=True)) == ["Zwei"]


def test_switching_accounts_signed_out_redirects(anonymous_client: Client, account: Any) -> None:
    response = anonymous_client.post(reverse("survey:account-switch"), {"account": account.pk})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("identity:login"))


def test_a_member_closes_and_reopens_a_survey_in_one_click(
    bob_client: Client, survey: Survey
) -> None:
    url = reverse("survey:survey-open", args=[survey.pk])
    response = bob_client.post(url, {"is_open": "0"}, follow=True)
    assert "The survey is closed: it accepts no more responses." in response.content.decode()
    survey.refresh_from_db()
    assert not survey.is_open
    survey.closes_at = timezone.now() - datetime.timedelta(days=1)
    survey.save(update_fields=["closes_at"])
    bob_client.post(url, {"is_open": "1"})
    survey.refresh_from_db()
    assert (survey.is_open, survey.closes_at) == (True, None)
    assert survey.accepts_responses()


@pytest.mark.parametrize(("persona", "status"), [("carol", 404), ("anonymous", 302)])
def test_outsiders_cannot_close_a_survey(
    request: pytest.FixtureRequest, persona: str, status: int, survey: Survey
) -> None:
    client: Client = request.getfixturevalue(f"{persona}_client")
    url = reverse("survey:survey-open", args=[survey.pk])
    assert client.post(url, {"is_open": "0"}).status_code == status
    survey.refresh_from_db()
    assert survey.is_open


def test_an_administrator_closes_a_survey_from_the_builder(
    ada_client: Client, survey: Survey
) -> None:
    page = ada_client.get(reverse("survey:survey", args=[survey.pk])).content.decode()
    assert reverse("survey:survey-open", args=[survey.pk]) in page
    assert (
        ada_client.post(
            reverse("survey:survey-open", args=[survey.pk]), {"is_open": "0"}
        ).status_code
        == 302
    )
    survey.refresh_from_db()
    assert not survey.is_open


# --- copies -----------------------------------------------------------------------------------


def test_copying_a_question_puts_it_right_after_the_original_without_archived_choices(
    bob_client: Client, choice_question: Question, survey: Survey
) -> None:
    add_question(bob_client, survey, text="Last")
    answer(choice_question, choice_question.options["choices"][2]["key"])
    edit_question(bob_client, choice_question, choices="Apple\nBanana")  # Cherry is archived
    url = reverse("survey:question-copy", args=[survey.pk, choice_question.pk])
    assert bob_client.post(url).status_code == 302
    assert texts(survey) == ["Fruit?", "Fruit?", "Last"]
    copy = survey.questions.exclude(pk=choice_question.pk).get(text="Fruit?")
    assert [c["label"] for c in copy.options["choices"]] == ["Apple", "Banana"]
    assert copy.answers.count() == 0


def test_copying_a_survey_makes_a_closed_copy_with_sections_and_current_questions(
    ada_client: Client, survey: Survey
) -> None:
    section = Section.objects.create(survey=survey, title="Part 2", position=0)
    Question.objects.create(survey=survey, kind="nps", text="NPS", is_required=True)
    Question.objects.create(survey=survey, section=section, kind="long_text", text="Why?")
    Question.objects.create(survey=survey, kind="email", text="Old", is_archived=True)
    response = ada_client.post(reverse("survey:survey-copy", args=[survey.pk]))
    copy = Survey.objects.exclude(pk=survey.pk).get()
    assert response["Location"] == reverse("survey:survey", args=[copy.pk])
    assert (copy.title, copy.is_open, copy.portal_id) == (
        "Copy of Customer satisfaction",
        False,
        survey.portal_id,
    )
    assert copy.public_id != survey.public_id
    assert sorted(
        (q.text, q.kind, q.is_required, q.section.title if q.section else "")
        for q in copy.questions.all()
    ) == [("NPS", "nps", True, ""), ("Why?", "long_text", False, "Part 2")]
    assert copy.sections.get().pk != section.pk


@pytest.mark.parametrize(("persona", "status"), [("carol", 404), ("anonymous", 302)])
def test_outsiders_cannot_copy_surveys_or_questions(
    request: pytest.FixtureRequest, persona: str, status: int, choice_question: Question
) -> None:
    client: Client = request.getfixturevalue(f"{persona}_client")
    survey_pk = choice_question.survey_id
    assert client.post(reverse("survey:survey-copy", args=[survey_pk])).status_code == status
    url = reverse("survey:question-copy", args=[survey_pk, choice_question.pk])
    assert client.post(url).status_code == status
    assert Survey.objects.count() == 1
    assert Question.objects.count() == 1
