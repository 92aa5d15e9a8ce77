"""GET /survey/api/v1/responses writes its page without validating it again (a backlog's pull
asks for 500 at a time): the body must still be exactly what its published schema says."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from kizuna.survey.api.schemas import ResponsePage
from kizuna.survey.models import AccountMember, Answer, Question, Survey
from kizuna.survey.webhooks.services import response_payload
from kizuna.testing.survey_keys import make_response, sc_headers

pytestmark = pytest.mark.django_db


def test_a_page_of_responses_is_exactly_in_its_published_schema(
    client: Client, ada_member: AccountMember, survey: Survey
) -> None:
    matrix = Question.objects.create(
        survey=survey,
        position=3,
        kind="matrix",
        text="Rate each",
        options={
            "rows": [{"key": "speed", "label": "Speed"}, {"key": "price", "label": "Price"}],
            "columns": [{"key": "ok", "label": "Fine"}, {"key": "ko", "label": "Poor"}],
        },
    )
    responses = [make_response(survey, reference=f"crm:k:lead:{n}") for n in range(3)]
    Answer.objects.create(response=responses[0], question=matrix, value={"speed": "ok"})

    page = client.get("/survey/api/v1/responses?limit=2", **sc_headers(ada_member))

    assert (page.status_code, page["Content-Type"]) == (200, "application/json; charset=utf-8")
    body: dict[str, Any] = page.json()
    assert ResponsePage.model_validate(body).model_dump(mode="json") == body
    assert body["items"] == [response_payload(response) for response in responses[:2]]
    assert body["items"][0]["answers"][-1]["rows"] == [
        {"key": "speed", "label": "Speed", "column": {"key": "ok", "label": "Fine"}}
    ]
    assert isinstance(body["next_cursor"], str)
