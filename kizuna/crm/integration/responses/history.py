"""What the Survey section, the history page and the API read: a record's invitations and
responses from CRM rows only (a Survey outage never slows a record page), in a constant
number of queries, the answers prepared for showing (choices by label, NPS and ratings as
scores, a matrix as a table). The history follows a lead converted into a contact."""

from __future__ import annotations

import datetime
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from kizuna.crm.integration.models import SurveyInvitation, SurveyResponse
from kizuna.crm.models import Contact, Lead

NPS_GROUPS = ((9, _("Promoter")), (7, _("Passive")), (0, _("Detractor")))


def converted_lead_ids(record: Lead | Contact) -> list[int]:
    """The leads converted into `record` (a contact): their survey history is the contact's."""
    if isinstance(record, Lead):
        return []
    return list(
        Lead.objects.filter(
            organization_id=record.organization_id, converted_contact=record
        ).values_list("pk", flat=True)
    )


def _of_record(
    queryset: QuerySet[Any], record: Lead | Contact, lead_ids: Sequence[int] | None
) -> QuerySet[Any]:
    queryset = queryset.filter(organization_id=record.organization_id)
    if isinstance(record, Lead):
        return queryset.filter(lead=record)
    if lead_ids is None:
        lead_ids = converted_lead_ids(record)
    # Without converted leads (most contacts) the newest rows come straight from the
    # record's index; an OR joined to the leads read and sorted every row of the record.
    if not lead_ids:
        return queryset.filter(contact=record)
    return queryset.filter(Q(contact=record) | Q(lead_id__in=lead_ids))


def responses_of(
    record: Lead | Contact, *, lead_ids: Sequence[int] | None = None
) -> QuerySet[SurveyResponse]:
    """The record's responses, newest first (deleted ones without their answers);
    `lead_ids`: converted_lead_ids(record) when the caller has it already."""
    return _of_record(SurveyResponse.objects.all(), record, lead_ids).order_by(
        "-submitted_at", "-pk"
    )


def invitations_of(
    record: Lead | Contact, *, lead_ids: Sequence[int] | None = None
) -> QuerySet[SurveyInvitation]:
    return _of_record(SurveyInvitation.objects.all(), record, lead_ids).order_by(
        "-created_at", "-pk"
    )


@dataclass(frozen=True)
class ShownAnswer:
    question: str
    kind: str
    display: str
    score: int | None = None  # NPS 0-10, rating
    scale: int | None = None  # 10 for NPS
    group: Any = ""  # NPS: promoter, passive, detractor
    rows: tuple[tuple[str, str], ...] = ()  # matrix: (row, column) labels
    day: datetime.date | None = None  # date: shown in the reader's format, not as ISO

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
        elif kind == "date" and (day := _iso_date(value)) is not None:
            shown.append(ShownAnswer(text, kind, display, day=day))
        elif kind == "matrix":
            rows = tuple((str(row), str(column)) for row, column in answer.get("rows") or [])
            shown.append(ShownAnswer(text, kind, display, rows=rows))
        else:
            shown.append(ShownAnswer(text, kind, display))
    return shown


def _iso_date(value: Any) -> datetime.date | None:
    """A date answer's value ("YYYY-MM-DD"), None when it is not one (then its text shows)."""
    try:
        return datetime.date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def invitation_state(invitation: SurveyInvitation) -> Any:
    if invitation.completed_at:
        return _("Responded")
    if invitation.opened_at:
        return _("Opened")
    return _("Sent")


class _Fragments:
    """Rendered pieces of the Survey section kept per process, by everything they show.

    A response is written once and changes only when it is deleted, an invitation when it is
    opened, answered or expires: each key holds every value its piece shows (and the
    language and time zone), so a piece is never stale, only forgotten when the oldest
    leave. A record page with a long history then renders its Survey section from here
    instead of through the template engine again (issue #7: the contact with 1,000
    responses).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._pieces: OrderedDict[Hashable, SafeString] = OrderedDict()
        self._lock = threading.Lock()

    def render(self, template: str, key: tuple[Any, ...], context: dict[str, Any]) -> SafeString:
        key = (
            template,
            translation.get_language(),
            timezone.get_current_timezone_name(),
            *key,
        )
        with self._lock:
            piece = self._pieces.get(key)
            if piece is not None:
                self._pieces.move_to_end(key)
                return piece
        piece = render_to_string(template, context)
        with self._lock:
            self._pieces[key] = piece
            while len(self._pieces) > self.size:
                self._pieces.popitem(last=False)
        return piece

    def clear(self) -> None:
        with self._lock:
            self._pieces.clear()


fragments = _Fragments(size=4000)


def rendered_response(response: SurveyResponse, *, module: str) -> SafeString:
    """One response with its answers as the Survey section and the history page show it."""
    key = (
        module,
        response.pk,
        response.response_id,
        response.survey_title,
        response.portal_name,
        response.submitted_at,
        response.deleted_at,
        response.lead_id,
        response.contact_id,
        repr(response.answers),
    )
    return fragments.render(
        "crm_survey_responses/_response.html",
        key,
        {"module": module, "response": response, "answers": shown_answers(response.answers)},
    )


def rendered_invitation(invitation: SurveyInvitation) -> SafeString:
    """One row of the Survey section's table of surveys sent."""
    key = (
        invitation.survey_title,
        invitation.created_at,
        invitation.sent_at,
        invitation.opened_at,
        invitation.completed_at,
        invitation.expires_at,
    )
    return fragments.render(
        "crm_survey_responses/_invitation.html",
        key,
        {"invitation": invitation, "state": invitation_state(invitation)},
    )
