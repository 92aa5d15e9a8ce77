"""What the integration benchmarks (bench/integration_*.py, issue #7) share.

A co-deployed Kizuna (CRM and Survey in one deployment, one database, as `kizuna serve` runs
them): gunicorn gthread on loopback for the web and a separate `kizuna worker` process the
benchmark starts and stops (what `kizuna serve` runs as its child). This process has Django
set up on the same database: it builds the world, generates load and watches the CRM's rows.

The world: Ada administers the CRM organization "Bench" and the Survey account "Bench
surveys"; a survey of four questions (NPS, choice, matrix, short text); the integration is
enabled through the Survey API like the wizard's Submit (services.enable: a webhook endpoint at
the Survey service pointing at the CRM's intake URL); N leads, each with a personal invitation
made through the Survey API 1,000 per call.

Each benchmark runs one database per process (Django is set up once per process): `main()` of
a benchmark calls `per_database()`, which runs the script again with `--child DATABASE` and
collects the JSON line it prints last.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _harness import (
    ROOT,
    free_port,
    gunicorn,
    kizuna,
    kizuna_env,
    postgres_database,
    stop,
    wait_up,
)

PASSWORD = "bench-password-0123456789"  # a throw-away database


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def per_database(script: str, databases: list[str], extra: list[str]) -> dict[str, dict[str, Any]]:
    """Run `script --child DATABASE` for each of `databases` ("postgresql", "sqlite"); the
    JSON object each printed last, by database. PostgreSQL gets a fresh database."""
    results: dict[str, dict[str, Any]] = {}
    for database in databases:
        name = "bench_integration_" + Path(script).stem.removeprefix("integration_")
        if database == "postgresql":
            with postgres_database(name) as url:
                if url is None:
                    continue
                results[database] = _child(script, url, extra)
        else:
            results[database] = _child(script, "", extra)
    return results


def _child(script: str, url: str, extra: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, script, "--child", url or "sqlite", *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    for line in lines[:-1]:
        print(line, flush=True)
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@dataclass
class World:
    survey_id: int
    questions: dict[str, int]  # kind -> question id
    connection_id: int
    lead_ids: list[int]
    tokens: dict[int, str]  # lead id -> invitation token at the Survey service


class Deployment:
    """Kizuna on loopback (web in gunicorn, the worker started and stopped on demand) and
    Django set up in this process on the same database."""

    def __init__(
        self, database_url: str, *, port: int = 0, web_processes: int | None = None
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = tempfile.mkdtemp(prefix="kizuna-bench-integration-")
        extra = {
            "KIZUNA_BIND": f"127.0.0.1:{self.port}",
            "KIZUNA_BASE_URL": self.url,
            "SURVEY_URL": self.url,
            "KIZUNA_WEBHOOK_ALLOWED_ORIGINS": self.url,
            # Every respondent of the benchmark comes from 127.0.0.1 and answers at once.
            "KIZUNA_SURVEY_SUBMIT_RATE": "100000000/600",
            "KIZUNA_SURVEY_PAGE_RATE": "100000000/600",
            "KIZUNA_SURVEY_MIN_SECONDS": "0",
            "PYTHONUNBUFFERED": "1",
        }
        if database_url:
            extra["DATABASE_URL"] = database_url
        self.env = kizuna_env(self.data_dir, **extra)
        self.web_processes = web_processes
        # Stopped by a signal, the servers still stop (__exit__ runs).
        signal.signal(signal.SIGTERM, lambda *_args: sys.exit(1))
        os.environ.clear()
        os.environ.update(self.env)
        import django
        from django.core.management import call_command

        django.setup()
        import logging

        logging.getLogger("httpx").setLevel(logging.WARNING)
        call_command("migrate", verbosity=0)
        call_command("createcachetable", verbosity=0)
        self.web: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None

    @property
    def vendor(self) -> str:
        from django.db import connection

        return str(connection.vendor)

    def start_web(self) -> None:
        self.web = gunicorn(
            "kizuna.wsgi:application", self.port, self.env, workers=self.web_processes
        )
        wait_up(self.url + "/survey/api/v1/openapi.json", timeout=90)

    def start_worker(self, *, concurrency: int = 8, interval: float = 1.0) -> None:
        """`kizuna worker` as `kizuna serve` starts it (default concurrency 8)."""
        self.worker = kizuna(
            [
                "worker",
                "--worker-id",
                "bench",
                "--concurrency",
                str(concurrency),
                "--interval",
                str(interval),
            ],
            self.env,
        )

    def stop_worker(self) -> None:
        if self.worker is not None:
            stop(self.worker)
            self.worker = None

    def close(self) -> None:
        self.stop_worker()
        if self.web is not None:
            stop(self.web)
            self.web = None

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


MATRIX = {
    "rows": [{"key": "speed", "label": "Speed"}, {"key": "price", "label": "Price"}],
    "columns": [{"key": "good", "label": "Good"}, {"key": "poor", "label": "Poor"}],
}
CHOICES = [{"key": k, "label": k.upper()} for k in ("a", "b", "c", "d")]


def set_up_world(*, leads: int, invite: bool = True) -> World:
    """Ada, her organization and Survey account, a survey, the integration enabled through
    the Survey API (the web must be up), `leads` leads with a personal invitation each."""
    from django.utils import timezone

    from kizuna.crm.integration import client, services
    from kizuna.crm.integration.client import Credentials
    from kizuna.crm.integration.models import Connection, ConnectionMethod, SurveyInvitation
    from kizuna.crm.models import Lead, Membership, Organization, Role
    from kizuna.identity.models import User
    from kizuna.survey.keys.services import get_or_create_key
    from kizuna.survey.models import AccountMember, Question, Survey
    from kizuna.survey.services import create_account

    ada = User.objects.create_user("ada@example.com", PASSWORD, full_name="Ada Bench")
    organization = Organization.objects.create(name="Bench")
    Membership.objects.create(organization=organization, user=ada, role=Role.ADMINISTRATOR)
    account = create_account(name="Bench surveys", owner=ada)
    survey = Survey.objects.create(
        portal=account.portals.first(), title="Bench survey", language="en", created_by=ada
    )
    specs: list[tuple[str, dict[str, Any]]] = [
        ("nps", {}),
        ("single_choice", {"choices": CHOICES}),
        ("matrix", MATRIX),
        ("short_text", {}),
    ]
    questions = {
        kind: Question.objects.create(
            survey=survey, kind=kind, text=kind, options=options, position=n, is_required=True
        ).pk
        for n, (kind, options) in enumerate(specs)
    }
    member = AccountMember.objects.get(account=account, user=ada)
    key = get_or_create_key(member=member, by=ada).reveal()
    connection: Connection = services.enable(
        organization=organization,
        by=ada,
        credentials=Credentials(email=ada.email, key=key),
        method=ConnectionMethod.OTHER_ACCOUNT,
        uses_all_portals=True,
    )
    created = Lead.objects.bulk_create(
        Lead(
            organization=organization,
            family_name=f"Family{n}",
            given_name=f"Given{n}",
            email=f"lead{n}@example.com",
        )
        for n in range(leads)
    )
    tokens: dict[int, str] = {}
    if invite:
        for start in range(0, len(created), 1000):
            part = created[start : start + 1000]
            made = client.create_invitations(
                connection.credentials(),
                survey_id=survey.pk,
                invitations=[
                    client.InvitationRequest(
                        recipient_reference=connection.recipient_reference(lead), email=lead.email
                    )
                    for lead in part
                ],
            )
            now = timezone.now()
            SurveyInvitation.objects.bulk_create(
                SurveyInvitation(
                    connection=connection,
                    organization_id=organization.pk,
                    lead=lead,
                    survey_id=survey.pk,
                    survey_title=survey.title,
                    recipient_reference=invitation.recipient_reference,
                    email=invitation.email,
                    survey_token=invitation.token,
                    link=invitation.link,
                    sent_at=now,
                    expires_at=invitation.expires_at,
                )
                for lead, invitation in zip(part, made, strict=True)
            )
            tokens.update(
                (lead.pk, invitation.token) for lead, invitation in zip(part, made, strict=True)
            )
    return World(
        survey_id=survey.pk,
        questions=questions,
        connection_id=connection.pk,
        lead_ids=[lead.pk for lead in created],
        tokens=tokens,
    )


def form_answers(world: World, number: int) -> dict[str, Any]:
    """What a respondent posts on the public page (varied a little per respondent)."""
    q = world.questions
    return {
        f"q{q['nps']}": str(number % 11),
        f"q{q['single_choice']}": "abcd"[number % 4],
        f"q{q['matrix']}-speed": "good",
        f"q{q['matrix']}-price": "poor" if number % 2 else "good",
        f"q{q['short_text']}": f"Answer number {number}: quick and friendly, thank you.",
        "page": "1",
        "action": "submit",
    }


def submit_in_process(world: World, lead_ids: list[int]) -> None:
    """Respondents of `lead_ids` submit through the Survey's own service (what the public page
    calls): the response and its delivery row in one transaction, as after a real submit."""
    from kizuna.survey import validation
    from kizuna.survey.models import Invitation, Question, Survey
    from kizuna.survey.public.services import submit_response

    survey = Survey.objects.select_related("portal__account").get(pk=world.survey_id)
    questions = {q.pk: q for q in Question.objects.filter(survey=survey)}
    by_token = {
        invitation.token: invitation
        for invitation in Invitation.objects.filter(token__in=[world.tokens[pk] for pk in lead_ids])
    }
    for number, lead_id in enumerate(lead_ids):
        form = form_answers(world, number)
        answers = {}
        for question in questions.values():
            name = f"q{question.pk}"
            if question.kind == "matrix":
                raw: Any = {row: [form[f"{name}-{row}"]] for row in ("speed", "price")}
            else:
                raw = [form[name]]
            answers[question] = validation.validate_answer(question, raw)
        submit_response(
            survey=survey,
            invitation=by_token[world.tokens[lead_id]],
            answers=answers,
            language="en",
        )


def backlog_in_bulk(
    world: World, lead_ids: list[int], *, outage: datetime.timedelta | None = None
) -> None:
    """What `submit_in_process` leaves behind, written in bulk (a backlog of 10,000 in a
    minute rather than a quarter of an hour on a loaded machine): each invitation answered,
    its Response and Answers, and one `response.completed` Delivery per enabled endpoint with
    the payload `publish_event` would have enqueued. Only the results' counters are left out
    (nothing the CRM reads).

    `outage`: the responses were submitted one after the other over that long, up to now,
    while the CRM was down (the integration enabled before it, a pull made then), and their
    deliveries are due now; without it, each thousand is submitted when it is written.
    """
    from django.db import transaction
    from django.utils import timezone

    from kizuna.crm.integration.models import Connection
    from kizuna.survey import validation
    from kizuna.survey.models import Answer, Invitation, Question, Response, Survey
    from kizuna.survey.webhooks.models import Delivery, WebhookEndpoint
    from kizuna.survey.webhooks.services import _iso, response_payload

    survey = Survey.objects.select_related("portal__account").get(pk=world.survey_id)
    questions = list(Question.objects.filter(survey=survey))
    endpoints = [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(account=survey.portal.account)
        if endpoint.is_enabled and endpoint.is_subscribed_to("response.completed")
    ]
    began = timezone.now() - (outage or datetime.timedelta(0))
    if outage is not None:
        Connection.objects.filter(pk=world.connection_id).update(
            enabled_at=began - datetime.timedelta(minutes=1),
            reconciled_until=began - datetime.timedelta(minutes=1),
        )
    for start in range(0, len(lead_ids), 1000):
        part = lead_ids[start : start + 1000]
        now = timezone.now()
        invitations = list(Invitation.objects.filter(token__in=[world.tokens[pk] for pk in part]))

        with transaction.atomic():
            Invitation.objects.filter(pk__in=[i.pk for i in invitations]).update(completed_at=now)
            responses = Response.objects.bulk_create(
                Response(
                    survey=survey,
                    invitation=invitation,
                    recipient_reference=invitation.recipient_reference,
                    language="en",
                    submitted_at=(
                        now if outage is None else began + outage * (start + n) / len(lead_ids)
                    ),
                )
                for n, invitation in enumerate(invitations)
            )
            answers = []
            for number, response in enumerate(responses):
                form = form_answers(world, start + number)
                for question in questions:
                    name = f"q{question.pk}"
                    raw: Any = (
                        {row: [form[f"{name}-{row}"]] for row in ("speed", "price")}
                        if question.kind == "matrix"
                        else [form[name]]
                    )
                    value = validation.validate_answer(question, raw)
                    answers.append(Answer(response=response, question=question, value=value))
            Answer.objects.bulk_create(answers)
            Delivery.objects.bulk_create(
                Delivery(
                    endpoint=endpoint,
                    event_type="response.completed",
                    payload={
                        "type": "response.completed",
                        "timestamp": _iso(response.submitted_at),
                        "data": response_payload(response),
                    },
                    created_at=response.submitted_at,
                    next_attempt_at=now,
                )
                for response in Response.objects.filter(pk__in=[r.pk for r in responses])
                .order_by("submitted_at", "pk")
                .select_related("survey__portal")
                .prefetch_related("answers__question")
                for endpoint in endpoints
            )
