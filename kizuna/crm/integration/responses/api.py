"""The CRM API's survey-responses routes (E1): a lead's or contact's survey history, read
from CRM data. Added to kizuna.crm.api's API by hooks.register().

No `from __future__ import annotations` here: django-ninja reads the route signatures at
import time.
"""

from datetime import datetime
from typing import Any

from django.http import Http404, HttpRequest
from ninja import Query, Router, Schema
from pydantic import Field

from kizuna.crm.integration.models import current_connection
from kizuna.crm.integration.responses import history
from kizuna.crm.models import Contact, Lead, Membership, model_for
from kizuna.lib.api_errors import ErrorOut

MAX_LIMIT = 1000
ERRORS: dict[int, Any] = {code: ErrorOut for code in (400, 401, 403, 404, 422)}

router = Router(tags=["survey responses"])


class AnswerOut(Schema):
    question_id: int
    question: str = Field(description="The question's text.")
    kind: str = Field(description="The question's kind (single_choice, nps, matrix, ...).")
    position: int
    value: Any = Field(description="The stored value, as the Survey service sent it.")
    display: str = Field(description="The answer as text, with the choice labels.")
    rows: list[list[str]] | None = Field(
        None, description="Matrix: [row label, column label] pairs."
    )


class SurveyResponseOut(Schema):
    response_id: str
    survey_id: int
    survey_title: str
    portal_name: str
    lead_id: int | None
    contact_id: int | None
    language: str
    started_at: datetime | None
    submitted_at: datetime
    recorded_at: datetime
    deleted_at: datetime | None = Field(
        description="Deleted at the Survey service: its answers were removed."
    )
    answers: list[AnswerOut]


class SurveyResponsePage(Schema):
    count: int = Field(description="How many responses the record has.")
    items: list[SurveyResponseOut] = Field(description="Newest first.")


def _record(request: HttpRequest, module: str, pk: int) -> Lead | Contact:
    membership = request.auth  # type: ignore[attr-defined]
    assert isinstance(membership, Membership)
    try:
        record = model_for(module).objects.get(organization=membership.organization, pk=pk)
    except (Lead.DoesNotExist, Contact.DoesNotExist):
        raise Http404 from None
    if current_connection(membership.organization_id) is None:
        raise Http404  # D2: nothing of the Survey while the integration is not set up
    return record


def _page(record: Lead | Contact, offset: int, limit: int) -> dict[str, Any]:
    responses = history.responses_of(record)
    return {
        "count": responses.count(),
        "items": [
            {
                "response_id": response.response_id,
                "survey_id": response.survey_id,
                "survey_title": response.survey_title,
                "portal_name": response.portal_name,
                "lead_id": response.lead_id,
                "contact_id": response.contact_id,
                "language": response.language,
                "started_at": response.started_at,
                "submitted_at": response.submitted_at,
                "recorded_at": response.recorded_at,
                "deleted_at": response.deleted_at,
                "answers": [
                    {
                        "question_id": answer.get("question_id"),
                        "question": answer.get("text", ""),
                        "kind": answer.get("kind", ""),
                        "position": answer.get("position", 0),
                        "value": answer.get("value"),
                        "display": answer.get("display", ""),
                        "rows": answer.get("rows"),
                    }
                    for answer in response.answers
                ],
            }
            for response in responses[offset : offset + limit]
        ],
    }


HELP = (
    "The record's survey responses recorded in the CRM, newest first (a contact's include "
    "those of the lead it was converted from). 404 while the Survey integration is not set "
    "up. `offset`, `limit` (1-1000, default 100)."
)


@router.get(
    "/leads/{lead_id}/survey-responses", response={200: SurveyResponsePage, **ERRORS},
    operation_id="list_lead_survey_responses", description=HELP,
)  # fmt: skip
def list_lead_survey_responses(
    request: HttpRequest,
    lead_id: int,
    offset: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=MAX_LIMIT),
) -> dict[str, Any]:
    return _page(_record(request, "leads", lead_id), offset, limit)


@router.get(
    "/contacts/{contact_id}/survey-responses", response={200: SurveyResponsePage, **ERRORS},
    operation_id="list_contact_survey_responses", description=HELP,
)  # fmt: skip
def list_contact_survey_responses(
    request: HttpRequest,
    contact_id: int,
    offset: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=MAX_LIMIT),
) -> dict[str, Any]:
    return _page(_record(request, "contacts", contact_id), offset, limit)
