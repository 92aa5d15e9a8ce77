"""Reconciliation (E4, D6): what webhook delivery missed is pulled from the real Survey service
(GET /responses?since=, over HTTP) and recorded under the intake's rules, by a periodic leased
job, by "Reconcile now" of an administrator, and, after disabling, by a final pull up to the
cut-off followed by the deletion of the webhook endpoint, retried until done.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kizuna.crm.integration import services
from kizuna.crm.integration.client import Credentials
from kizuna.crm.integration.models import (
    Connection,
    ConnectionState,
    Reconciliation,
    ReconciliationKind,
    SurveyResponse,
)
from kizuna.crm.models import Activity, ActivityKind, Lead, Organization
from kizuna.e2e.integration.respond import (
    answer,
    answers_for,
    deleted_minutes_ago,
    enable,
    invite,
    lose_deliveries,
    make_due,
    run_worker,
    submitted_minutes_ago,
)
from kizuna.identity.models import User
from kizuna.survey.keys.services import regenerate_key
from kizuna.survey.models import AccountMember, Question, Response, Survey
from kizuna.survey.results.services import delete_response
from kizuna.survey.webhooks.models import Delivery, WebhookEndpoint
from kizuna.work.leases import WorkStatus

pytestmark = pytest.mark.usefixtures("survey_service")


def test_e4_enabling_schedules_the_periodic_reconciliation(connection: Connection) -> None:
    periodic = Reconciliation.objects.get(connection=connection)

    assert periodic.kind == ReconciliationKind.PERIODIC
    assert periodic.status == WorkStatus.PENDING
    assert periodic.next_attempt_at == connection.enabled_at + Reconciliation.every


def test_e4_periodic_reconciliation_records_what_delivery_missed_once_and_runs_again(
    connection: Connection, lead: Lead, ada_survey: Survey, questions: dict[str, Question]
) -> None:
    answer(invite(connection, lead, ada_survey), answers_for(questions))
    lose_deliveries()
    submitted_minutes_ago(2)
    make_due(ReconciliationKind.PERIODIC)
    run_worker()

    recorded = SurveyResponse.objects.get(lead=lead)
    assert recorded.response_id == str(Response.objects.get().pk)
    assert [item["display"] for item in recorded.answers][:2] == ["Good", "9"]
    periodic = Reconciliation.objects.get(kind=ReconciliationKind.PERIODIC)
    assert periodic.status == WorkStatus.PENDING  # scheduled again
    assert periodic.next_attempt_at > timezone.now() + datetime.timedelta(minutes=14)
    assert periodic.last_recorded == 1
    assert periodic.last_error == ""
    connection.refresh_from_db()
    assert connection.last_reconciled_at is not None
    assert connection.reconciled_until is not None
    # The next run and a late delivery of the webhook record nothing twice.
    make_due(ReconciliationKind.PERIODIC)
    Delivery.objects.filter(event_type="response.completed").update(
        status=WorkStatus.PENDING, next_attempt_at=timezone.now(), finished_at=None
    )
    run_worker()
    assert SurveyResponse.objects.count() == 1
    assert Reconciliation.objects.get(kind=ReconciliationKind.PERIODIC).last_recorded == 0


def test_e4_reconcile_now_is_for_administrators_and_records_at_once(
    connection: Connection,
    lead: Lead,
    ada_survey: Survey,
    questions: dict[str, Question],
    ada_client: Client,
    bob_client: Client,
    charlie_client: Client,
) -> None:
    answer(invite(connection, lead, ada_survey), answers_for(questions))
    lose_deliveries()
    submitted_minutes_ago(2)
    url = reverse("crm_survey_responses:reconcile")

    assert bob_client.post(url).status_code == 403
    refused = charlie_client.post(url, follow=True)  # Charlie's organization has no integration
    assert "not set up" in refused.content.decode()
    assert not Reconciliation.objects.filter(kind=ReconciliationKind.REQUESTED).exists()
    settings_page = ada_client.get(reverse("crm_integration:settings"))
    assert 'id="reconcile-now"' in settings_page.content.decode()
    started = ada_client.post(url, {"next": reverse("crm_integration:settings")})
    assert started.status_code == 302
    assert started["Location"] == reverse("crm_integration:settings")
    assert ada_client.post(url, {"next": "https://evil.example/"})["Location"] == reverse(
        "crm_survey_responses:delivery"
    )
    run_worker()

    assert SurveyResponse.objects.filter(lead=lead).count() == 1
    runs = Reconciliation.objects.filter(kind=ReconciliationKind.REQUESTED).order_by("pk")
    assert [(run.status, run.requested_by_id) for run in runs] == [
        (WorkStatus.DONE, connection.enabled_by_id),
        (WorkStatus.DONE, connection.enabled_by_id),
    ]
    assert sorted(run.last_recorded for run in runs) == [0, 1]
    page = ada_client.get(reverse("crm_survey_responses:delivery"))
    assert "Run by an administrator" in page.content.decode()


def test_d6_final_reconciliation_records_up_to_the_cut_off_then_deletes_the_endpoint(
    connection: Connection,
    lead: Lead,
    ada: User,
    organization: Organization,
    ada_survey: Survey,
    questions: dict[str, Question],
    settings: Any,
) -> None:
    other = Lead.objects.create(
        organization=organization, family_name="Sato", email="s@example.com"
    )
    late_link = invite(connection, other, ada_survey)
    answer(invite(connection, lead, ada_survey), answers_for(questions))
    lose_deliveries()
    services.disable(organization=organization, by=ada)
    answer(late_link, answers_for(questions))  # after the cut-off: never recorded
    lose_deliveries()
    final = Reconciliation.objects.get(kind=ReconciliationKind.FINAL)
    cut_off = connection_after(connection).disabled_at
    assert cut_off is not None
    assert final.next_attempt_at == cut_off + Reconciliation.settle_delay
    make_due(ReconciliationKind.FINAL)
    run_worker()

    assert list(SurveyResponse.objects.values_list("lead_id", flat=True)) == [lead.pk]
    final.refresh_from_db()
    assert final.status == WorkStatus.DONE
    assert final.last_recorded == 1
    disabled = connection_after(connection)
    assert disabled.final_reconciliation_done_at is not None
    assert disabled.webhook_endpoint_deleted_at is not None
    assert not WebhookEndpoint.objects.filter(pk=connection.webhook_endpoint_id or 0).exists()
    assert Response.objects.filter(survey=ada_survey).count() == 2  # D1: all kept there
    periodic = Reconciliation.objects.get(kind=ReconciliationKind.PERIODIC)
    make_due(ReconciliationKind.PERIODIC)
    run_worker()
    periodic.refresh_from_db()
    assert periodic.status == WorkStatus.DONE  # no more pulls for a disabled connection


def connection_after(connection: Connection) -> Connection:
    return Connection.objects.get(pk=connection.pk)


def test_d6_disabling_never_waits_on_the_survey_service_and_the_final_work_is_retried(
    connection: Connection,
    lead: Lead,
    ada: User,
    organization: Organization,
    ada_survey: Survey,
    questions: dict[str, Question],
    settings: Any,
    survey_service: str,
) -> None:
    answer(invite(connection, lead, ada_survey), answers_for(questions))
    lose_deliveries()
    settings.SURVEY_URL = "http://127.0.0.1:9"  # the Survey service is down
    services.disable(organization=organization, by=ada)
    make_due(ReconciliationKind.FINAL)
    run_worker()

    final = Reconciliation.objects.get(kind=ReconciliationKind.FINAL)
    assert final.status == WorkStatus.PENDING
    assert final.attempts == 1
    assert final.last_error.startswith("unreachable")
    assert final.next_attempt_at > timezone.now()
    assert not SurveyResponse.objects.exists()
    settings.SURVEY_URL = survey_service  # back
    make_due(ReconciliationKind.FINAL)
    run_worker()
    final.refresh_from_db()
    assert final.status == WorkStatus.DONE
    assert SurveyResponse.objects.filter(lead=lead).count() == 1
    assert not WebhookEndpoint.objects.filter(pk=connection.webhook_endpoint_id or 0).exists()


def test_k2_reconciliation_waits_for_reconnection_and_nothing_recorded_is_lost(
    connection: Connection,
    lead: Lead,
    ada_survey: Survey,
    questions: dict[str, Question],
    ada_member: AccountMember,
    ada_client: Client,
) -> None:
    answer(invite(connection, lead, ada_survey), answers_for(questions))
    run_worker()
    regenerate_key(member=ada_member, by=ada_member.user)
    make_due(ReconciliationKind.PERIODIC)
    run_worker()

    connection.refresh_from_db()
    assert connection.state == ConnectionState.NEEDS_RECONNECTION
    periodic = Reconciliation.objects.get(kind=ReconciliationKind.PERIODIC)
    assert periodic.status == WorkStatus.PENDING  # tries again next time
    assert periodic.last_error.startswith("revoked_key")
    refused = ada_client.post(reverse("crm_survey_responses:reconcile"), follow=True)
    assert "Reconnect with the new SC key first" in refused.content.decode()
    assert SurveyResponse.objects.filter(lead=lead).count() == 1


def test_e4_a_lost_response_deleted_is_healed_by_the_next_reconciliation(
    connection: Connection, lead: Lead, ada_survey: Survey, questions: dict[str, Question]
) -> None:
    answer(invite(connection, lead, ada_survey), answers_for(questions))
    run_worker()
    assert SurveyResponse.objects.get(lead=lead).answers != []
    delete_response(response=Response.objects.get(survey=ada_survey))
    lose_deliveries()  # response.deleted never reaches the CRM
    deleted_minutes_ago(2)
    make_due(ReconciliationKind.PERIODIC)
    run_worker()

    recorded = SurveyResponse.objects.get(lead=lead)
    assert recorded.answers == []
    assert recorded.deleted_at is not None
    entry = Activity.objects.get(lead=lead, kind=ActivityKind.SURVEY_RESPONSE_DELETED)
    assert entry.summary == "Customer satisfaction"
    periodic = Reconciliation.objects.get(kind=ReconciliationKind.PERIODIC)
    assert (periodic.last_recorded, periodic.last_error) == (1, "")
    # The next pull and a late redelivery of both events change nothing.
    make_due(ReconciliationKind.PERIODIC)
    Delivery.objects.update(status=WorkStatus.PENDING, next_attempt_at=timezone.now())
    run_worker()
    assert SurveyResponse.objects.get(lead=lead).answers == []
    assert Activity.objects.filter(kind=ActivityKind.SURVEY_RESPONSE_DELETED).count() == 1
    assert Reconciliation.objects.get(kind=ReconciliationKind.PERIODIC).last_recorded == 0


def test_e4_a_response_submitted_and_deleted_while_deliveries_were_lost_never_shows(
    connection: Connection, lead: Lead, ada_survey: Survey, questions: dict[str, Question]
) -> None:
    answer(invite(connection, lead, ada_survey), answers_for(questions))
    delete_response(response=Response.objects.get(survey=ada_survey))
    lose_deliveries()
    deleted_minutes_ago(2)
    make_due(ReconciliationKind.PERIODIC)
    run_worker()
    # Its response.completed arrives at last: the deletion the pull brought keeps it out.
    Delivery.objects.filter(event_type="response.completed").update(
        status=WorkStatus.PENDING, next_attempt_at=timezone.now()
    )
    run_worker()

    recorded = SurveyResponse.objects.get(lead=lead)
    assert (recorded.answers, recorded.deleted_at is not None) == ([], True)
    assert not Activity.objects.filter(kind=ActivityKind.SURVEY_RESPONDED).exists()


def test_d6_the_final_reconciliation_applies_deletions_made_before_the_cut_off_only(
    connection: Connection,
    lead: Lead,
    ada: User,
    organization: Organization,
    ada_survey: Survey,
    questions: dict[str, Question],
) -> None:
    other = Lead.objects.create(
        organization=organization, family_name="Sato", email="s@example.com"
    )
    answer(invite(connection, lead, ada_survey), answers_for(questions))
    answer(invite(connection, other, ada_survey), answers_for(questions))
    run_worker()
    first, second = Response.objects.order_by("submitted_at")
    first_id, second_id = str(first.pk), str(second.pk)
    delete_response(response=first)
    lose_deliveries()
    deleted_minutes_ago(3)
    services.disable(organization=organization, by=ada)
    delete_response(response=second)  # after the cut-off: the CRM keeps what it recorded
    lose_deliveries()
    make_due(ReconciliationKind.FINAL)
    run_worker()

    assert Reconciliation.objects.get(kind=ReconciliationKind.FINAL).status == WorkStatus.DONE
    assert SurveyResponse.objects.get(response_id=first_id).answers == []
    assert SurveyResponse.objects.get(response_id=second_id).answers != []


# --- K2 while disabling: the final work stops, the page says what to do ------------------------


def disabled_with_key_revoked(
    connection: Connection,
    organization: Organization,
    ada: User,
    ada_member: AccountMember,
    lead: Lead,
    ada_survey: Survey,
    questions: dict[str, Question],
) -> None:
    """A response whose delivery was lost, then disabling, then the key regenerated (K2)
    before the final work ran: it fails once and stops."""
    answer(invite(connection, lead, ada_survey), answers_for(questions))
    lose_deliveries()
    services.disable(organization=organization, by=ada)
    regenerate_key(member=ada_member, by=ada)
    make_due(ReconciliationKind.FINAL)
    run_worker()


@pytest.fixture
def stopped(
    survey_service: str,
    connection: Connection,
    organization: Organization,
    ada: User,
    ada_member: AccountMember,
    lead: Lead,
    ada_survey: Survey,
    questions: dict[str, Question],
) -> Reconciliation:
    disabled_with_key_revoked(
        connection, organization, ada, ada_member, lead, ada_survey, questions
    )
    return Reconciliation.objects.get(kind=ReconciliationKind.FINAL)


def test_k2_a_key_revoked_while_disabling_stops_the_final_work_at_once(
    stopped: Reconciliation, connection: Connection
) -> None:
    assert (stopped.status, stopped.attempts) == (WorkStatus.FAILED, 1)
    assert stopped.last_error.startswith("revoked_key")
    make_due(ReconciliationKind.FINAL)
    run_worker()  # a failed row is never picked up again: bounded
    stopped.refresh_from_db()
    assert (stopped.status, stopped.attempts) == (WorkStatus.FAILED, 1)
    disabled = connection_after(connection)
    assert disabled.state == ConnectionState.DISABLED
    assert disabled.webhook_endpoint_deleted_at is None
    assert disabled.stopped_final_work() == stopped


@pytest.mark.parametrize(
    ("language", "title", "why", "finish", "without"),
    [
        (
            "en",
            "Disabling could not finish",
            "The Survey service refused the stored SC key",
            "Finish disabling",
            "Finish without the Survey service",
        ),
        (
            "ja",
            "無効化を完了できませんでした",
            "Surveyサービスが保存済みのSCキーを拒否しました",
            "無効化を完了する",
            "Surveyサービスなしで完了する",
        ),
    ],
)
@pytest.mark.usefixtures("stopped")
def test_k2_the_settings_page_says_the_disabling_stopped_and_what_to_do_in_each_language(
    ada_client: Client, language: str, title: str, why: str, finish: str, without: str
) -> None:
    page = ada_client.get(
        reverse("crm_integration:settings"), headers={"Accept-Language": language}
    ).content.decode()

    assert 'id="final-work-stopped"' in page
    for text in (title, why, finish, without):
        assert text in page


def test_k2_reconnecting_with_the_new_key_finishes_the_disabling(
    stopped: Reconciliation,
    connection: Connection,
    ada_client: Client,
    ada_member: AccountMember,
    lead: Lead,
) -> None:
    from kizuna.survey.keys.services import get_or_create_key

    new_key = get_or_create_key(member=ada_member, by=ada_member.user).reveal()
    url = reverse("crm_integration:finish-disabling")

    wrong = ada_client.post(url, {"email": "ada@example.com", "key": "sck_wrong"})
    assert wrong.status_code == 422
    assert Reconciliation.objects.get(pk=stopped.pk).status == WorkStatus.FAILED
    done = ada_client.post(url, {"email": "ada@example.com", "key": new_key})
    assert done.status_code == 302
    run_worker()

    stopped.refresh_from_db()
    assert stopped.status == WorkStatus.DONE
    assert SurveyResponse.objects.filter(lead=lead).count() == 1  # submitted before the cut-off
    disabled = connection_after(connection)
    assert disabled.state == ConnectionState.DISABLED
    assert disabled.credentials().key == new_key
    assert disabled.webhook_endpoint_deleted_at is not None
    assert not WebhookEndpoint.objects.filter(pk=connection.webhook_endpoint_id or 0).exists()
    assert (
        'id="final-work-stopped"'
        not in ada_client.get(reverse("crm_integration:settings")).content.decode()
    )


def test_k2_a_key_of_another_account_does_not_finish_the_disabling(
    stopped: Reconciliation, ada_client: Client, carol_credentials: Credentials
) -> None:
    refused = ada_client.post(
        reverse("crm_integration:finish-disabling"),
        {"email": carol_credentials.email, "key": carol_credentials.key},
    )

    assert refused.status_code == 422
    assert "belongs to the Survey account" in refused.content.decode()
    stopped.refresh_from_db()
    assert stopped.status == WorkStatus.FAILED


def test_k2_finishing_without_the_survey_keeps_the_d_rules_and_is_audited(
    stopped: Reconciliation,
    connection: Connection,
    ada_client: Client,
    bob_client: Client,
    lead: Lead,
) -> None:
    from kizuna.crm.audit.models import AuditAction, AuditEntry

    url = reverse("crm_integration:finish-without-survey")
    assert bob_client.post(url).status_code == 403
    assert connection_after(connection).finished_without_survey_at is None

    finished = ada_client.post(url)
    # A delivery from before the cut-off that still arrives is recorded (D6): the endpoint
    # stays at the Survey service (D1).
    Delivery.objects.filter(event_type="response.completed").update(
        status=WorkStatus.PENDING, next_attempt_at=timezone.now()
    )
    run_worker()

    assert finished.status_code == 302
    disabled = connection_after(connection)
    assert disabled.finished_without_survey_at is not None
    assert disabled.stopped_final_work() is None
    assert WebhookEndpoint.objects.filter(pk=connection.webhook_endpoint_id or 0).exists()
    assert SurveyResponse.objects.filter(lead=lead).count() == 1
    assert (
        AuditEntry.objects.filter(action=AuditAction.INTEGRATION_FINISHED_WITHOUT_SURVEY).count()
        == 1
    )
    page = ada_client.get(reverse("crm_integration:settings")).content.decode()
    assert 'id="finished-without-survey"' in page
    assert 'id="final-work-stopped"' not in page
    again = ada_client.post(url, follow=True)
    assert "nothing left to finish" in again.content.decode()


def test_k2_a_disabling_stopped_before_enabling_again_is_still_shown_and_can_be_finished(
    stopped: Reconciliation,
    connection: Connection,
    organization: Organization,
    ada: User,
    ada_member: AccountMember,
    ada_client: Client,
    lead: Lead,
) -> None:
    from kizuna.survey.keys.services import get_or_create_key

    new_key = get_or_create_key(member=ada_member, by=ada).reveal()
    enabled_again = enable(organization, ada, Credentials(email="ada@example.com", key=new_key))
    page = ada_client.get(reverse("crm_integration:settings")).content.decode()
    assert f'id="final-work-stopped-{connection.pk}"' in page
    assert "Enabling the integration again did not finish it" in page
    assert f'id="final-work-stopped-{enabled_again.pk}"' not in page

    done = ada_client.post(
        reverse("crm_integration:finish-disabling"),
        {"email": "ada@example.com", "key": new_key, "connection_id": str(connection.pk)},
    )
    assert done.status_code == 302
    run_worker()

    stopped.refresh_from_db()
    assert stopped.status == WorkStatus.DONE
    # The response submitted before the cut-off is recorded once, on the old connection.
    assert list(SurveyResponse.objects.filter(lead=lead).values_list("connection", flat=True)) == [
        connection.pk
    ]
    assert connection_after(connection).webhook_endpoint_deleted_at is not None
    assert not WebhookEndpoint.objects.filter(pk=connection.webhook_endpoint_id or 0).exists()
    current = connection_after(enabled_again)
    assert current.state == ConnectionState.ENABLED
    assert WebhookEndpoint.objects.filter(pk=current.webhook_endpoint_id or 0).exists()
    page = ada_client.get(reverse("crm_integration:settings")).content.decode()
    assert 'id="final-work-stopped' not in page


def test_k2_a_disabling_stopped_before_enabling_again_can_be_finished_without_the_survey(
    stopped: Reconciliation,
    connection: Connection,
    organization: Organization,
    ada: User,
    ada_member: AccountMember,
    ada_client: Client,
) -> None:
    from kizuna.survey.keys.services import get_or_create_key

    new_key = get_or_create_key(member=ada_member, by=ada).reveal()
    enabled_again = enable(organization, ada, Credentials(email="ada@example.com", key=new_key))

    finished = ada_client.post(
        reverse("crm_integration:finish-without-survey"), {"connection_id": str(connection.pk)}
    )

    assert finished.status_code == 302
    assert connection_after(connection).finished_without_survey_at is not None
    assert connection_after(enabled_again).finished_without_survey_at is None
    assert connection_after(enabled_again).state == ConnectionState.ENABLED
    page = ada_client.get(reverse("crm_integration:settings")).content.decode()
    assert 'id="final-work-stopped' not in page


def test_k2_setting_up_again_says_the_stopped_disabling_is_left_to_finish(
    stopped: Reconciliation,
    connection: Connection,
    ada_client: Client,
    carol_credentials: Credentials,
) -> None:
    def step(name: str) -> str:
        return reverse("crm_integration:setup", kwargs={"step": name})

    ada_client.post(step("method"), {"method": "other_account"})
    ada_client.post(
        step("credentials"), {"email": "carol@example.com", "key": carol_credentials.key}
    )
    ada_client.post(step("portals"), {"use_all": "on"})
    ada_client.post(step("users"), {})
    confirm = ada_client.get(step("confirm")).content.decode()

    assert 'id="previous-disabling-stopped"' in confirm
    assert connection.survey_account_name.replace("'", "&#x27;") in confirm
    assert "Enabling the integration again does not finish it" in confirm
