"""What the response tests share: enabling, inviting a record at the real Survey service,
answering its personal link at the public page, and running the worker (which delivers the
Survey's webhooks over HTTP to the CRM's intake and runs reconciliations)."""

from __future__ import annotations

import datetime
from typing import Any

from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kizuna.crm.integration import client, services
from kizuna.crm.integration.client import Credentials
from kizuna.crm.integration.models import (
    Connection,
    ConnectionMethod,
    Reconciliation,
    ReconciliationKind,
    SurveyInvitation,
)
from kizuna.crm.models import Contact, Lead, Organization
from kizuna.identity.models import User
from kizuna.survey.models import Question, Response, Survey
from kizuna.survey.webhooks.models import DeletedResponse, Delivery
from kizuna.work import leases
from kizuna.work.leases import WorkStatus

# --- helpers --------------------------------------------------------------------------------


def enable(
    organization: Organization, by: User, credentials: Credentials, **kwargs: Any
) -> Connection:
    """Enable with another user's account (all portals unless `kwargs` say otherwise)."""
    options: dict[str, Any] = {"uses_all_portals": True, "method": ConnectionMethod.OTHER_ACCOUNT}
    return services.enable(
        organization=organization, by=by, credentials=credentials, **(options | kwargs)
    )


def run_worker() -> None:
    while leases.run_due_work(worker_id="test"):
        pass


def lose_deliveries() -> None:
    """The webhooks never reached the CRM (dead-lettered after days of a CRM outage)."""
    Delivery.objects.update(status=WorkStatus.FAILED, finished_at=timezone.now())


def submitted_minutes_ago(minutes: int) -> None:
    """Move the Survey's responses back in time (a pull leaves out its last seconds), and the
    connections enabled since back before them: their first pull starts where they were enabled."""
    moment = timezone.now() - datetime.timedelta(minutes=minutes)
    Response.objects.update(submitted_at=moment)
    _enabled_before(moment)


def deleted_minutes_ago(minutes: int) -> None:
    """Move the Survey's deletions back in time, as submitted_minutes_ago moves responses."""
    moment = timezone.now() - datetime.timedelta(minutes=minutes)
    DeletedResponse.objects.update(deleted_at=moment)
    _enabled_before(moment)


def _enabled_before(moment: datetime.datetime) -> None:
    Connection.objects.filter(enabled_at__gte=moment).update(
        enabled_at=moment - datetime.timedelta(minutes=1)
    )


def make_due(kind: ReconciliationKind) -> None:
    Reconciliation.objects.filter(kind=kind).update(next_attempt_at=timezone.now())


def invite(connection: Connection, record: Lead | Contact, survey: Survey) -> SurveyInvitation:
    """A personal link for `record`, made at the Survey service as a survey email makes it."""
    made = client.create_invitations(
        connection.credentials(),
        survey_id=survey.pk,
        invitations=[
            client.InvitationRequest(
                recipient_reference=connection.recipient_reference(record), email=record.email
            )
        ],
    )[0]
    return SurveyInvitation.objects.create(
        connection=connection,
        organization_id=connection.organization_id,
        lead=record if isinstance(record, Lead) else None,
        contact=record if isinstance(record, Contact) else None,
        survey_id=survey.pk,
        survey_title=survey.title,
        recipient_reference=made.recipient_reference,
        email=made.email,
        survey_token=made.token,
        link=made.link,
        sent_at=timezone.now(),
        expires_at=made.expires_at,
    )


def answer(invitation: SurveyInvitation, data: dict[str, str]) -> None:
    """The respondent opens the link and submits the survey at the public page."""
    respondent = Client()
    url = reverse("survey_public:invitation", args=[invitation.survey_token])
    assert respondent.get(url).status_code == 200
    page = respondent.post(url, {"page": "1", "action": "submit", **data})
    assert page.status_code == 302, page.content.decode()[:2000]


def add_questions(ada_survey: Survey) -> dict[str, Question]:
    """A survey with a choice, an NPS, a matrix and a long text question."""

    def add(kind: str, text: str, **options: Any) -> Question:
        return Question.objects.create(
            survey=ada_survey,
            kind=kind,
            text=text,
            options=options,
            position=ada_survey.questions.count(),
        )

    return {
        "choice": add(
            "single_choice",
            "How was it?",
            choices=[{"key": "good", "label": "Good"}, {"key": "bad", "label": "Bad"}],
        ),
        "nps": add("nps", "Recommend us?"),
        "matrix": add(
            "matrix",
            "Rate each",
            rows=[{"key": "speed", "label": "Speed"}, {"key": "price", "label": "Price"}],
            columns=[{"key": "ok", "label": "Fine"}, {"key": "ko", "label": "Poor"}],
        ),
        "text": add("long_text", "Anything else?"),
    }


def answers_for(questions: dict[str, Question]) -> dict[str, str]:
    return {
        f"q{questions['choice'].pk}": "good",
        f"q{questions['nps'].pk}": "9",
        f"q{questions['matrix'].pk}-speed": "ok",
        f"q{questions['matrix'].pk}-price": "ko",
        f"q{questions['text'].pk}": "Very kind people.",
    }
