"""The Survey section of lead and contact pages and the API's survey-responses routes (E1, D2):
every invitation and every response with its answers, newest first, from CRM data only, the
history following a lead converted into a contact, gone while the integration is disabled."""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest
from django.db import connection as database
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import dateformat, timezone, translation

from kizuna.crm import services as crm_services
from kizuna.crm.integration import services
from kizuna.crm.integration.models import Connection, SurveyInvitation, SurveyResponse
from kizuna.crm.models import Contact, Lead, Organization
from kizuna.e2e.integration.respond import (
    add_questions,
    answer,
    answers_for,
    invite,
    run_worker,
)
from kizuna.identity.models import User
from kizuna.survey.models import Question, Response, Survey
from kizuna.survey.results.services import delete_response
from kizuna.testing.crm_api import ApiClient

pytestmark = pytest.mark.usefixtures("survey_service")


@pytest.fixture
def questions(ada_survey: Survey) -> dict[str, Question]:
    found = add_questions(ada_survey)
    found["rating"] = Question.objects.create(
        survey=ada_survey, kind="rating", text="Stars?", position=ada_survey.questions.count()
    )
    return found


@pytest.fixture
def contact(organization: Organization) -> Contact:
    return Contact.objects.create(
        organization=organization, family_name="Mori", given_name="Aoi", email="aoi@example.com"
    )


def page_of(client: Client, record: Lead | Contact) -> str:
    name = "crm:lead-detail" if isinstance(record, Lead) else "crm:contact-detail"
    page = client.get(reverse(name, args=[record.pk]))
    assert page.status_code == 200
    return str(page.content.decode())


def section_of(html: str) -> str:
    found = re.search(r'<section class="card survey-section".*?</section>', html, re.DOTALL)
    return found.group(0) if found else ""


def test_e1_the_contact_page_shows_the_invitation_and_the_response_with_every_answer(
    connection: Connection,
    contact: Contact,
    ada_survey: Survey,
    questions: dict[str, Question],
    ada_client: Client,
) -> None:
    answer(
        invite(connection, contact, ada_survey),
        answers_for(questions) | {f"q{questions['rating'].pk}": "4"},
    )
    run_worker()

    html = page_of(ada_client, contact)
    section = section_of(html)
    assert "Customer satisfaction" in section
    assert '<span class="badge ok">Responded</span>' in section
    assert "<dt>How was it?</dt>" in section
    assert "Good" in section
    assert "<strong>9</strong> / 10" in section
    assert "Promoter" in section
    assert "★★★★" in section and "4 stars" in section
    assert '<th scope="row">Speed</th><td>Fine</td>' in section
    assert '<th scope="row">Price</th><td>Poor</td>' in section
    assert "Very kind people." in section
    timeline = html[html.index("timeline-card") :]
    assert "Survey responded" in timeline
    assert "Survey opened" in timeline


def test_e1_the_section_in_japanese(
    connection: Connection,
    contact: Contact,
    ada_survey: Survey,
    questions: dict[str, Question],
    ada_client: Client,
) -> None:
    answer(invite(connection, contact, ada_survey), answers_for(questions))
    run_worker()

    page = ada_client.get(
        reverse("crm:contact-detail", args=[contact.pk]), HTTP_ACCEPT_LANGUAGE="ja"
    )
    section = section_of(page.content.decode())
    assert "送信したアンケート" in section
    assert "回答済み" in section
    assert "推奨者" in section


def test_e1_dates_are_shown_as_the_readers_language_writes_them_and_the_table_has_three_columns(
    connection: Connection,
    contact: Contact,
    ada_survey: Survey,
    questions: dict[str, Question],
    ada_client: Client,
) -> None:
    """A date answer in the reader's format (not ISO); the response's time written as the
    timeline writes it; each invitation's dates in one cell, so the table fits the column."""
    day = Question.objects.create(
        survey=ada_survey, kind="date", text="Visited on?", position=ada_survey.questions.count()
    )
    answer(
        invite(connection, contact, ada_survey),
        answers_for(questions) | {f"q{questions['rating'].pk}": "4", f"q{day.pk}": "2026-01-15"},
    )
    run_worker()
    submitted = SurveyResponse.objects.get().submitted_at

    english = section_of(page_of(ada_client, contact))
    japanese = section_of(
        ada_client.get(
            reverse("crm:contact-detail", args=[contact.pk]), HTTP_ACCEPT_LANGUAGE="ja"
        ).content.decode()
    )

    assert "<dt>Visited on?</dt>" in english
    assert '<time datetime="2026-01-15">Jan. 15, 2026</time>' in english
    assert '<time datetime="2026-01-15">2026年1月15日</time>' in japanese
    local = timezone.localtime(submitted)
    with translation.override("en"):
        assert f"Submitted on {dateformat.format(local, 'N j, Y')}," in english
    assert f"{local.year}年{local.month}月{local.day}日" in japanese
    header = re.search(r"<thead>.*?</thead>", english, re.DOTALL)
    assert header is not None
    assert re.findall(r"<th>(.*?)</th>", header.group(0)) == ["Survey", "State", "Dates"]
    assert 'Sent on <span class="date">' in english and "Responded on" in english
    assert "に回答" in japanese and "リンクの有効期限" in japanese


def test_e1_the_section_drawn_again_shows_each_change_of_its_invitation_and_response(
    connection: Connection,
    contact: Contact,
    ada_survey: Survey,
    questions: dict[str, Question],
    ada_client: Client,
) -> None:
    """The section's pieces are kept per process between pages: a change is never hidden
    behind a piece drawn before it, in either language."""
    invitation = invite(connection, contact, ada_survey)
    sent = section_of(page_of(ada_client, contact))
    assert '<span class="badge">Sent</span>' in sent
    assert "No response yet." in sent

    answer(invitation, answers_for(questions))
    run_worker()
    answered = section_of(page_of(ada_client, contact))
    assert '<span class="badge ok">Responded</span>' in answered
    assert "Very kind people." in answered
    in_japanese = ada_client.get(
        reverse("crm:contact-detail", args=[contact.pk]), HTTP_ACCEPT_LANGUAGE="ja"
    )
    assert "回答済み" in section_of(in_japanese.content.decode())

    delete_response(response=Response.objects.get(survey=ada_survey))
    run_worker()
    deleted = section_of(page_of(ada_client, contact))
    assert "its answers were removed from the CRM" in deleted
    assert "Very kind people." not in deleted


def test_e1_invitations_and_responses_are_newest_first_and_unanswered_ones_are_listed(
    connection: Connection,
    contact: Contact,
    ada_survey: Survey,
    ada_portals: Any,
    questions: dict[str, Question],
    ada: User,
    ada_client: Client,
) -> None:
    second = Survey.objects.create(
        portal=ada_survey.portal, title="Event feedback", language="en", created_by=ada
    )
    answer(invite(connection, contact, ada_survey), answers_for(questions))
    unanswered = invite(connection, contact, second)
    run_worker()

    section = section_of(page_of(ada_client, contact))
    table = section[: section.index("<h3>Responses</h3>")]
    assert table.index("Event feedback") < table.index("Customer satisfaction")
    assert '<span class="badge">Sent</span>' in table
    assert unanswered.survey_title in table


def test_e1_the_history_follows_a_lead_converted_into_a_contact(
    connection: Connection,
    organization: Organization,
    ada_survey: Survey,
    questions: dict[str, Question],
    ada: User,
    ada_client: Client,
) -> None:
    lead = Lead.objects.create(organization=organization, family_name="Ito", email="i@example.com")
    answer(invite(connection, lead, ada_survey), answers_for(questions))
    run_worker()
    contact = crm_services.convert_lead(lead=lead, by=ada)

    section = section_of(page_of(ada_client, contact))
    assert "Customer satisfaction" in section
    assert "Very kind people." in section
    assert "Very kind people." in section_of(page_of(ada_client, lead))


def test_d2_the_section_and_the_api_disappear_when_the_integration_is_disabled(
    connection: Connection,
    contact: Contact,
    organization: Organization,
    ada_survey: Survey,
    questions: dict[str, Question],
    ada: User,
    ada_client: Client,
    ada_api: ApiClient,
) -> None:
    answer(invite(connection, contact, ada_survey), answers_for(questions))
    run_worker()
    assert section_of(page_of(ada_client, contact))
    services.disable(organization=organization, by=ada)

    assert 'id="survey-section"' not in page_of(ada_client, contact)
    assert ada_api.get(f"/contacts/{contact.pk}/survey-responses").status_code == 404
    assert SurveyResponse.objects.filter(contact=contact).count() == 1  # kept in the CRM


def test_e1_the_section_renders_from_crm_data_while_the_survey_service_is_down(
    connection: Connection,
    contact: Contact,
    ada_survey: Survey,
    questions: dict[str, Question],
    ada_client: Client,
    settings: Any,
) -> None:
    answer(invite(connection, contact, ada_survey), answers_for(questions))
    run_worker()
    settings.SURVEY_URL = "http://127.0.0.1:9"

    assert "Very kind people." in section_of(page_of(ada_client, contact))


def _many(connection: Connection, contact: Lead | Contact, count: int) -> None:
    now = timezone.now()
    record: dict[str, Any] = (
        {"lead": contact} if isinstance(contact, Lead) else {"contact": contact}
    )
    answers = [
        {"question_id": 1, "kind": "nps", "text": "Recommend us?", "position": 0, "value": 9,
         "display": "9"},
        {"question_id": 2, "kind": "matrix", "text": "Rate each", "position": 1,
         "value": {"speed": "ok"}, "display": "Speed: Fine", "rows": [["Speed", "Fine"]]},
    ]  # fmt: skip
    SurveyInvitation.objects.bulk_create(
        SurveyInvitation(
            connection=connection,
            organization_id=contact.organization_id,
            **record,
            survey_id=index,
            survey_title=f"Survey {index}",
            recipient_reference=connection.recipient_reference(contact),
            created_at=now - datetime.timedelta(minutes=index),
            completed_at=now,
        )
        for index in range(count)
    )
    SurveyResponse.objects.bulk_create(
        SurveyResponse(
            connection=connection,
            organization_id=contact.organization_id,
            **record,
            response_id=f"{contact.pk}-{index}",
            survey_id=index,
            survey_title=f"Survey {index}",
            submitted_at=now - datetime.timedelta(minutes=index),
            answers=answers,
        )
        for index in range(count)
    )


def test_e1_a_contact_with_1000_responses_takes_as_many_queries_as_one_with_2(
    connection: Connection, organization: Organization, ada_client: Client
) -> None:
    few = Contact.objects.create(organization=organization, family_name="Few")
    many = Contact.objects.create(organization=organization, family_name="Many")
    _many(connection, few, 2)
    _many(connection, many, 1000)
    page_of(ada_client, few)  # warm the session and the caches

    with CaptureQueriesContext(database) as with_few:
        page_of(ada_client, few)
    with CaptureQueriesContext(database) as with_many:
        html = page_of(ada_client, many)

    assert len(with_many) == len(with_few)
    section = section_of(html)
    assert section.index("Survey 0") < section.index("Survey 1<")
    assert reverse("crm_survey_responses:history", args=["contacts", many.pk]) in section
    history = ada_client.get(
        reverse("crm_survey_responses:history", args=["contacts", many.pk]), {"page": 20}
    )
    assert history.status_code == 200
    assert "Survey 999" in history.content.decode()


def test_e1_a_converted_lead_with_1000_responses_takes_as_many_queries_as_one_with_2(
    connection: Connection, organization: Organization, ada: User, ada_client: Client
) -> None:
    few = Lead.objects.create(organization=organization, family_name="Few")
    many = Lead.objects.create(organization=organization, family_name="Many")
    _many(connection, few, 2)
    _many(connection, many, 1000)
    few_contact = crm_services.convert_lead(lead=few, by=ada)
    many_contact = crm_services.convert_lead(lead=many, by=ada)
    page_of(ada_client, few_contact)  # warm the session and the caches
    counted = {}

    records: list[tuple[str, Lead | Contact]] = [
        ("few lead", few),
        ("many lead", many),
        ("few contact", few_contact),
        ("many contact", many_contact),
    ]
    for name, record in records:
        with CaptureQueriesContext(database) as queries:
            html = page_of(ada_client, record)
        counted[name] = len(queries)
        assert "Survey 0<" in section_of(html)

    assert counted["many lead"] == counted["few lead"]
    assert counted["many contact"] == counted["few contact"]


def test_e1_the_api_lists_a_records_survey_responses_in_its_organization_only(
    connection: Connection,
    contact: Contact,
    ada_survey: Survey,
    questions: dict[str, Question],
    ada_api: ApiClient,
    charlie_api: ApiClient,
) -> None:
    answer(invite(connection, contact, ada_survey), answers_for(questions))
    run_worker()

    listed = ada_api.get(f"/contacts/{contact.pk}/survey-responses")
    assert listed.status_code == 200
    body = listed.json()
    assert body["count"] == 1
    item = body["items"][0]
    assert item["survey_title"] == "Customer satisfaction"
    assert item["contact_id"] == contact.pk
    assert item["deleted_at"] is None
    by_question = {answer["question"]: answer for answer in item["answers"]}
    assert by_question["How was it?"]["value"] == "good"
    assert by_question["How was it?"]["display"] == "Good"
    assert by_question["Recommend us?"]["value"] == 9
    assert by_question["Rate each"]["rows"] == [["Speed", "Fine"], ["Price", "Poor"]]
    assert charlie_api.get(f"/contacts/{contact.pk}/survey-responses").status_code == 404
    assert ada_api.get("/leads/999999/survey-responses").status_code == 404
