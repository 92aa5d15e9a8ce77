"""`by` feeds the Survey audit trail: members, portals, survey deletion, SC key regeneration and
webhook endpoints each write exactly one entry, in the transaction of their change, naming who
did what to which object; a refused change writes none. Builder edits record nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from kizuna.identity.models import User
from kizuna.survey import services
from kizuna.survey.audit.models import AuditAction, AuditEntry
from kizuna.survey.builder import services as builder_services
from kizuna.survey.keys import services as key_services
from kizuna.survey.models import (
    MemberInvitation,
    MemberRole,
    Portal,
    Survey,
    SurveyAccount,
)
from kizuna.survey.webhooks import services as webhook_services
from kizuna.survey.webhooks.models import Delivery
from kizuna.testing.smtp import free_port, smtp_settings
from kizuna.testing.survey_keys import make_response
from kizuna.work.leases import WorkStatus

pytestmark = pytest.mark.django_db

HOOK = "https://93.184.215.14/hook"


def only_entry(account: SurveyAccount) -> AuditEntry:
    """The one entry of `account` (fails when there are none or several)."""
    [entry] = AuditEntry.objects.filter(account=account)
    return entry


def summary(entry: AuditEntry) -> tuple[Any, ...]:
    return (entry.action, entry.actor, entry.target_type, entry.target_id, entry.target_repr)


@pytest.fixture
def carol_entry(carol_member: Any, carol_account: SurveyAccount, carol: User) -> AuditEntry:
    """An entry of Carol's account, which no count of Ada's account's entries may include."""
    services.create_portal(account=carol_account, name="Research", by=carol)
    return only_entry(carol_account)


def test_each_invitation_sent_is_one_entry_naming_its_address_and_role(
    account: SurveyAccount, ada_member: Any, bob_member: Any, ada: User, carol_entry: AuditEntry
) -> None:
    services.invite_members(
        account=account,
        emails=["Dan@Example.com", "bob@example.com", "erin@example.com"],
        by=ada,
        role=MemberRole.ADMINISTRATOR,
    )

    dan, erin = MemberInvitation.objects.of(account).order_by("email")
    entries = list(AuditEntry.objects.of(account).order_by("pk"))
    sent = (AuditAction.MEMBER_INVITATION_SENT, ada, "survey.memberinvitation")
    assert [summary(entry) for entry in entries] == [
        (*sent, dan.pk, "dan@example.com"),
        (*sent, erin.pk, "erin@example.com"),
    ]
    assert entries[0].data == {"email": "dan@example.com", "role": "admin"}
    assert entries[0].sentence() == "Ada Lovelace invited dan@example.com to join as Administrator."


def test_inviting_only_existing_members_or_an_invalid_address_records_nothing(
    account: SurveyAccount, ada_member: Any, bob_member: Any, ada: User
) -> None:
    services.invite_members(account=account, emails=["bob@example.com"], by=ada)
    with pytest.raises(ValidationError):
        services.invite_members(account=account, emails=["new@example.com", "no"], by=ada)
    assert AuditEntry.objects.count() == 0


def test_an_invitation_sent_again_is_recorded_only_when_it_went_out(
    account: SurveyAccount, ada_member: Any, ada: User, mail_server: Any
) -> None:
    services.invite_members(account=account, emails=["dan@example.com"], by=ada)
    dan = MemberInvitation.objects.select_related("account").get(email="dan@example.com")
    with smtp_settings(free_port()):
        assert services.resend_member_invitation(invitation=dan, by=ada) is False
    assert AuditEntry.objects.filter(action=AuditAction.MEMBER_INVITATION_RESENT).count() == 0

    server, port = mail_server
    with smtp_settings(port):
        assert services.resend_member_invitation(invitation=dan, by=ada) is True
    assert [message["To"] for message in server.received] == ["dan@example.com"]
    entry = AuditEntry.objects.get(action=AuditAction.MEMBER_INVITATION_RESENT)
    assert entry.sentence() == "Ada Lovelace sent the invitation to dan@example.com again."


def test_accepting_declining_withdrawing_and_expiring_each_write_one_entry(
    account: SurveyAccount, ada_member: Any, ada: User, bob: User, carol: User
) -> None:
    services.invite_members(
        account=account,
        emails=["bob@example.com", "carol@example.com", "dan@example.com", "erin@example.com"],
        by=ada,
    )
    bob_inv, carol_inv, dan_inv, erin_inv = MemberInvitation.objects.order_by("email")
    AuditEntry.objects.all().delete()

    services.accept_member_invitation(invitation=bob_inv, user=bob)
    services.decline_member_invitation(invitation=carol_inv, by=carol)
    services.withdraw_member_invitation(invitation=dan_inv, by=ada)
    MemberInvitation.objects.filter(pk=erin_inv.pk).update(expires_at=timezone.now())
    services.expire_member_invitation(erin_inv)

    entries = list(AuditEntry.objects.of(account).order_by("pk"))
    assert [(e.action, e.actor, e.target_repr) for e in entries] == [
        (AuditAction.MEMBER_INVITATION_ACCEPTED, bob, "bob@example.com"),
        (AuditAction.MEMBER_INVITATION_DECLINED, carol, "carol@example.com"),
        (AuditAction.MEMBER_INVITATION_WITHDRAWN, ada, "dan@example.com"),
        (AuditAction.MEMBER_INVITATION_EXPIRED, None, "erin@example.com"),
    ]
    assert [e.sentence() for e in entries] == [
        "bob@example.com accepted the invitation and joined as Member.",
        "carol@example.com declined the invitation.",
        "Ada Lovelace withdrew the invitation to dan@example.com.",
        "The invitation to erin@example.com expired without an answer.",
    ]
    assert not MemberInvitation.objects.exists()
    assert list(account.members.values_list("user__email", flat=True).order_by("pk")) == [
        "ada@example.com",
        "bob@example.com",
    ]


def test_changing_a_role_and_removing_a_member(
    account: SurveyAccount, ada_member: Any, bob_member: Any, ada: User
) -> None:
    services.change_member_role(member=bob_member, role=MemberRole.ADMINISTRATOR, by=ada)
    services.change_member_role(member=bob_member, role=MemberRole.ADMINISTRATOR, by=ada)
    bob_pk = bob_member.pk
    services.remove_member(member=bob_member, by=ada)

    entries = list(AuditEntry.objects.order_by("pk"))
    assert [summary(e) for e in entries] == [
        (
            AuditAction.MEMBER_ROLE_CHANGED,
            ada,
            "survey.accountmember",
            bob_pk,
            "bob@example.com",
        ),
        (AuditAction.MEMBER_REMOVED, ada, "survey.accountmember", bob_pk, "bob@example.com"),
    ]
    assert entries[0].data == {"role": "admin", "previous_role": "member"}
    assert [entry.sentence() for entry in entries] == [
        "Ada Lovelace changed bob@example.com's role to Administrator.",
        "Ada Lovelace removed bob@example.com from the account.",
    ]


def test_the_last_administrator_keeps_the_role_and_nothing_is_recorded(
    account: SurveyAccount, ada_member: Any, ada: User
) -> None:
    with pytest.raises(services.SurveyRuleError):
        services.change_member_role(member=ada_member, role=MemberRole.MEMBER, by=ada)
    with pytest.raises(services.SurveyRuleError):
        services.remove_member(member=ada_member, by=ada)
    assert AuditEntry.objects.count() == 0


def test_portals_created_renamed_and_deleted(
    account: SurveyAccount, ada_member: Any, portal: Portal, ada: User
) -> None:
    events = services.create_portal(account=account, name=" Events ", by=ada)
    services.rename_portal(portal=events, name="Seminars", by=ada)
    services.rename_portal(portal=events, name="Seminars", by=ada)  # unchanged
    events_pk = events.pk
    services.delete_portal(portal=events, by=ada)

    entries = list(AuditEntry.objects.order_by("pk"))
    assert [(e.action, e.target_id) for e in entries] == [
        (AuditAction.PORTAL_CREATED, events_pk),
        (AuditAction.PORTAL_RENAMED, events_pk),
        (AuditAction.PORTAL_DELETED, events_pk),
    ]
    assert [entry.sentence() for entry in entries] == [
        "Ada Lovelace created the portal “Events”.",
        "Ada Lovelace renamed the portal “Events” to “Seminars”.",
        "Ada Lovelace deleted the portal “Seminars”.",
    ]


def test_a_portal_with_surveys_is_not_deleted_and_nothing_is_recorded(
    ada_member: Any, survey: Survey, ada: User
) -> None:
    services.create_portal(account=survey.portal.account, name="Spare", by=ada)
    with pytest.raises(services.SurveyRuleError):
        services.delete_portal(portal=survey.portal, by=ada)
    assert list(AuditEntry.objects.values_list("action", flat=True)) == [AuditAction.PORTAL_CREATED]


def test_deleting_a_survey_is_recorded_and_one_with_responses_is_refused(
    account: SurveyAccount, ada_member: Any, survey: Survey, portal: Portal, ada: User
) -> None:
    answered = Survey.objects.create(portal=portal, title="Answered", created_by=ada)
    make_response(answered)
    with pytest.raises(services.SurveyRuleError):
        builder_services.delete_survey(survey=answered, by=ada)
    assert AuditEntry.objects.count() == 0

    survey_pk = survey.pk
    builder_services.delete_survey(survey=survey, by=ada)
    entry = only_entry(account)
    assert summary(entry) == (
        AuditAction.SURVEY_DELETED,
        ada,
        "survey.survey",
        survey_pk,
        "Satisfaction",
    )
    assert entry.sentence() == "Ada Lovelace deleted the survey “Satisfaction”."


def test_builder_edits_record_nothing(survey: Survey) -> None:
    question = survey.questions.order_by("position").first()
    assert question is not None
    section = builder_services.add_section(survey=survey, title="Page 2", description="")
    builder_services.move_question(question=question, offset=1)
    builder_services.copy_question(question=question)
    builder_services.move_section(section=section, offset=-1)
    builder_services.delete_section(section=section)
    assert AuditEntry.objects.count() == 0


def test_regenerating_an_sc_key_names_whose_key_it_was(
    account: SurveyAccount, ada_member: Any, ada: User, carol_entry: AuditEntry
) -> None:
    old = key_services.get_or_create_key(member=ada_member)
    key_services.regenerate_key(member=ada_member, by=ada)

    entry = only_entry(account)
    assert summary(entry) == (
        AuditAction.SC_KEY_REGENERATED,
        ada,
        "survey.accountmember",
        ada_member.pk,
        "ada@example.com",
    )
    assert entry.sentence() == (
        "Ada Lovelace regenerated the SC key of ada@example.com: the old key no longer works."
    )
    old.refresh_from_db()
    assert old.revoked_at is not None


def test_webhook_endpoints_from_creation_to_deletion(
    account: SurveyAccount, ada_member: Any, ada: User
) -> None:
    endpoint, _secret = webhook_services.create_endpoint(
        account=account, url=HOOK, events=["response.completed"], by=ada
    )
    webhook_services.disable_endpoint(endpoint=endpoint, reason="The endpoint answered 410 Gone.")
    webhook_services.enable_endpoint(endpoint=endpoint, by=ada)
    webhook_services.register_endpoint(
        account=account, url=HOOK, events=["invitation.opened"], by=ada
    )
    delivery = Delivery.objects.create(
        endpoint=endpoint,
        event_type="response.completed",
        payload={},
        status=WorkStatus.FAILED,
        attempts=3,
    )
    assert webhook_services.replay_delivery(delivery=delivery, by=ada) is True
    endpoint_pk = endpoint.pk
    webhook_services.delete_endpoint(endpoint=endpoint, by=ada)

    entries = list(AuditEntry.objects.order_by("pk"))
    assert [(e.action, e.actor, e.target_type) for e in entries] == [
        (AuditAction.WEBHOOK_ENDPOINT_CREATED, ada, "survey_webhooks.webhookendpoint"),
        (AuditAction.WEBHOOK_ENDPOINT_DISABLED, None, "survey_webhooks.webhookendpoint"),
        (AuditAction.WEBHOOK_ENDPOINT_ENABLED, ada, "survey_webhooks.webhookendpoint"),
        (AuditAction.WEBHOOK_ENDPOINT_REGISTERED, ada, "survey_webhooks.webhookendpoint"),
        (AuditAction.WEBHOOK_DELIVERY_REPLAYED, ada, "survey_webhooks.delivery"),
        (AuditAction.WEBHOOK_ENDPOINT_DELETED, ada, "survey_webhooks.webhookendpoint"),
    ]
    assert {e.target_id for e in entries if e.target_type.endswith("endpoint")} == {endpoint_pk}
    assert [entry.sentence() for entry in entries] == [
        f"Ada Lovelace added the webhook endpoint {HOOK}.",
        f"Kizuna disabled the webhook endpoint {HOOK}: The endpoint answered 410 Gone.",
        f"Ada Lovelace enabled the webhook endpoint {HOOK}.",
        f"Ada Lovelace registered the webhook endpoint {HOOK} again.",
        f"Ada Lovelace sent the delivery response.completed {delivery.message_id} to {HOOK} again.",
        f"Ada Lovelace deleted the webhook endpoint {HOOK}.",
    ]


def test_a_delivery_in_flight_is_not_replayed_and_nothing_is_recorded(
    account: SurveyAccount, ada_member: Any, ada: User
) -> None:
    endpoint, _secret = webhook_services.create_endpoint(
        account=account, url=HOOK, events=["response.completed"], by=None
    )
    delivery = Delivery.objects.create(
        endpoint=endpoint, event_type="response.completed", payload={}, status=WorkStatus.LEASED
    )
    assert webhook_services.replay_delivery(delivery=delivery, by=ada) is False
    assert list(AuditEntry.objects.values_list("action", "actor")) == [
        (AuditAction.WEBHOOK_ENDPOINT_CREATED, None)
    ]
