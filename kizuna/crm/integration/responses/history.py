"""What the Survey section, the history page and the API read: a record's invitations and
responses from CRM rows only (a Survey outage never slows a record page), in a constant
number of queries, the answers prepared for showing (choices by label, NPS and ratings as
scores, a matrix as a table). The history follows a lead converted into a contact."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet
from django.utils.translation import gettext_lazy as _

from kizuna.crm.integration.models import SurveyInvitation, SurveyResponse
from kizuna.crm.models import Contact, Lead

NPS_GROUPS = ((9, _("Promoter")), (7, _("Passive")), (0, _("Detractor")))


def _of_record(queryset: QuerySet[Any], record: Lead | Contact) -> QuerySet[Any]:
    queryset = queryset.filter(organization_id=record.organization_id)
    if isinstance(record, Lead):
        return queryset.filter(lead=record)
    return queryset.filter(Q(contact=record) | Q(lead__converted_contact=record))


def responses_of(record: Lead | Contact) -> QuerySet[SurveyResponse]:
    """The record's responses, newest first (deleted ones without their answers)."""
    return _of_record(SurveyResponse.objects.all(), record).order_by("-submitted_at", "-pk")


def invitations_of(record: Lead | Contact) -> QuerySet[SurveyInvitation]:
    return _of_record(SurveyInvitation.objects.all(), record).order_by("-created_at", "-pk")


@dataclass(frozen=True)
class ShownAnswer:
    question: str
    kind: str
    display: str
    score: int | None = None  # NPS 0-10, rating
    scale: int | None = None  # 10 for NPS
    group: Any = ""  # NPS: promoter, passive, detractor
    rows: tuple[tuple[str, str], ...] = ()  # matrix: (row, column) labels

    @property
    def stars(self) -> str:
        return "★" * max(0, min(self.score or 0, 10))


def shown_answers(answers: list[dict[str, Any]]) -> list[ShownAnswer]:
    shown = []
    for answer in answers:
        kind, value, display = (
            answer.get("kind", ""),
            answer.get("value"),
            answer.get("display", ""),
        )
        text = answer.get("text", "")
        if kind in ("nps", "rating") and isinstance(value, int | float):
            score = int(value)
            group = next((label for floor, label in NPS_GROUPS if score >= floor), "")
            shown.append(
                ShownAnswer(
                    text,
                    kind,
                    display,
                    score=score,
                    scale=10 if kind == "nps" else None,
                    group=group if kind == "nps" else "",
                )
            )
        elif kind == "matrix":
            rows = tuple((str(row), str(column)) for row, column in answer.get("rows") or [])
            shown.append(ShownAnswer(text, kind, display, rows=rows))
        else:
            shown.append(ShownAnswer(text, kind, display))
    return shown


def invitation_state(invitation: SurveyInvitation) -> Any:
    if invitation.completed_at:
        return _("Responded")
    if invitation.opened_at:
        return _("Opened")
    return _("Sent")
