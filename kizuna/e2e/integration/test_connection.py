"""Enabling (S5, S9), disabling (D1, D6's cut-off) and reconnecting (K2) the Survey integration
through kizuna.crm.integration.services, against the real Survey service over HTTP."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.db import IntegrityError, transaction

from kizuna.crm.audit.models import AuditAction, AuditEntry
from kizuna.crm.integration import client, services
from kizuna.crm.integration.client import Credentials, FailureCode, SurveyError
from kizuna.crm.integration.models import (
    Connection,
    ConnectionMethod,
    ConnectionState,
    current_connection,
    parse_recipient_reference,
)
from kizuna.crm.integration.services import IntegrationError
from kizuna.crm.models import Contact, Lead, Organization
from kizuna.e2e.integration.respond import enable
from kizuna.identity.models import User
from kizuna.lib.api_errors import ErrorCode
from kizuna.survey.keys.services import regenerate_key
from kizuna.survey.models import AccountMember, Portal, SurveyAccount
from kizuna.survey.webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.usefixtures("survey_service")


@pytest.mark.usefixtures("ada_membership")
def test_s9_enabling_stores_the_connection_its_webhook_endpoint_and_an_audit_entry(
    organization: Organization,
    ada: User,
    ada_credentials: Credentials,
    ada_account: SurveyAccount,
    survey_service: str,
) -> None:
    connection = enable(organization, ada, ada_credentials)

    stored = Connection.objects.get()
    endpoint = WebhookEndpoint.objects.get()
    assert stored.pk == connection.pk
    assert stored.state == ConnectionState.ENABLED
    assert (stored.survey_account_id, stored.survey_account_name) == (
        ada_account.pk,
        "Ada's Surveys",
    )
    assert stored.sc_email == "ada@example.com"
    assert ada_credentials.key not in stored.sc_key_encrypted  # encrypted at rest
    assert stored.credentials() == ada_credentials
    assert stored.uses_all_portals and stored.portals == []
    assert (stored.enabled_by, stored.disabled_at) == (ada, None)
    assert endpoint.account_id == ada_account.pk
    assert endpoint.url == f"{survey_service}/crm/integration/intake/{stored.intake_token}/"
    assert stored.intake_url() == endpoint.url
    assert sorted(endpoint.events) == [
        "invitation.opened",
        "response.completed",
        "response.deleted",
    ]
    assert stored.webhook_endpoint_id == endpoint.pk
    assert stored.webhook_secret() == endpoint.signing_secret()
    assert endpoint.signing_secret() not in stored.webhook_secret_encrypted
    [entry] = AuditEntry.objects.of(organization)
    assert (entry.action, entry.actor) == (AuditAction.INTEGRATION_ENABLED, ada)
    assert current_connection(organization) == stored


@pytest.mark.usefixtures("ada_membership")
def test_s5_chosen_portals_are_kept_with_their_names(
    organization: Organization, ada: User, ada_credentials: Credentials, ada_portals: list[Portal]
) -> None:
    chosen = [client.Portal(id=ada_portals[1].pk, name=ada_portals[1].name)]

    connection = enable(organization, ada, ada_credentials, uses_all_portals=False, portals=chosen)

    assert connection.portals == [{"id": ada_portals[1].pk, "name": ada_portals[1].name}]
    assert connection.portal_ids() == [ada_portals[1].pk]


@pytest.mark.usefixtures("ada_membership")
def test_s5_neither_all_surveys_nor_a_portal_is_refused_and_nothing_saved(
    organization: Organization, ada: User, ada_credentials: Credentials
) -> None:
    with pytest.raises(IntegrationError) as refused:
        enable(organization, ada, ada_credentials, uses_all_portals=False, portals=[])

    assert refused.value.code == "no_portals"
    assert not Connection.objects.exists()
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.usefixtures("ada_membership")
def test_s5_a_portal_of_another_account_is_refused_and_nothing_saved(
    organization: Organization,
    ada: User,
    ada_credentials: Credentials,
    carol_account: SurveyAccount,
) -> None:
    carols = carol_account.portals.get()

    with pytest.raises(IntegrationError) as refused:
        enable(
            organization,
            ada,
            ada_credentials,
            uses_all_portals=False,
            portals=[client.Portal(id=carols.pk, name=carols.name)],
        )

    assert refused.value.code == "unknown_portal"
    assert not Connection.objects.exists()
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.usefixtures("ada_membership")
@pytest.mark.parametrize(
    ("email", "key_of", "code"),
    [
        ("nobody@example.com", "ada", ErrorCode.UNKNOWN_EMAIL),
        ("ada@example.com", "carol", ErrorCode.WRONG_KEY),
        ("ada@example.com", "revoked", ErrorCode.REVOKED_KEY),
    ],
)
def test_s4_a_refused_key_enables_nothing(
    organization: Organization,
    ada: User,
    ada_credentials: Credentials,
    ada_member: AccountMember,
    carol_credentials: Credentials,
    email: str,
    key_of: str,
    code: FailureCode,
) -> None:
    key = {"ada": ada_credentials.key, "carol": carol_credentials.key}.get(key_of)
    if key_of == "revoked":
        key = ada_credentials.key
        regenerate_key(member=ada_member, by=ada)
    assert key is not None

    with pytest.raises(SurveyError) as refused:
        enable(organization, ada, Credentials(email, key))

    assert refused.value.code == code
    assert not Connection.objects.exists()
    assert not WebhookEndpoint.objects.exists()
    assert not AuditEntry.objects.exists()


@pytest.mark.usefixtures("ada_membership")
def test_s9_the_survey_service_refusing_the_endpoint_enables_nothing(
    organization: Organization, ada: User, ada_credentials: Credentials, settings: Any
) -> None:
    settings.KIZUNA_WEBHOOK_ALLOWED_ORIGINS = ()  # now it refuses the CRM's loopback address

    with pytest.raises(SurveyError) as refused:
        enable(organization, ada, ada_credentials)

    assert refused.value.code == ErrorCode.INVALID
    assert not Connection.objects.exists()
    assert not WebhookEndpoint.objects.exists()
    assert not AuditEntry.objects.exists()


@pytest.mark.usefixtures("ada_membership")
def test_s9_a_failure_after_the_endpoint_was_created_removes_it_and_a_retry_works(
    organization: Organization,
    ada: User,
    ada_credentials: Credentials,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def audit_fails(**kwargs: Any) -> None:
        raise RuntimeError("the database went away")

    with monkeypatch.context() as patched:
        patched.setattr(services, "record_audit", audit_fails)
        with pytest.raises(RuntimeError):
            enable(organization, ada, ada_credentials)

    assert not Connection.objects.exists()
    assert not WebhookEndpoint.objects.exists()  # created, then removed again

    connection = enable(organization, ada, ada_credentials)

    assert WebhookEndpoint.objects.get().pk == connection.webhook_endpoint_id


@pytest.mark.usefixtures("ada_membership")
def test_s9_enabling_twice_is_refused_and_the_second_endpoint_removed(
    organization: Organization, ada: User, ada_credentials: Credentials
) -> None:
    first = enable(organization, ada, ada_credentials)

    with pytest.raises(IntegrationError) as refused:
        enable(organization, ada, ada_credentials)

    assert refused.value.code == "already_set_up"
    assert list(Connection.objects.all()) == [first]
    assert list(WebhookEndpoint.objects.values_list("pk", flat=True)) == [first.webhook_endpoint_id]


@pytest.mark.usefixtures("ada_membership")
def test_s9_the_database_allows_one_connection_in_use_per_organization(
    organization: Organization, ada: User, ada_credentials: Credentials
) -> None:
    first = enable(organization, ada, ada_credentials)
    second = Connection(
        organization=organization,
        method=ConnectionMethod.OTHER_ACCOUNT,
        survey_account_id=first.survey_account_id,
        survey_account_name="x",
        sc_email="ada@example.com",
        sc_key_encrypted="x",
    )

    with pytest.raises(IntegrityError), transaction.atomic():
        second.save()


@pytest.mark.usefixtures("ada_membership", "charlie_membership")
def test_s9_two_organizations_connected_to_one_account_have_their_own_endpoints_and_references(
    organization: Organization,
    other_organization: Organization,
    ada: User,
    charlie: User,
    ada_credentials: Credentials,
) -> None:
    ours = enable(organization, ada, ada_credentials)
    theirs = enable(other_organization, charlie, ada_credentials)
    lead = Lead.objects.create(organization=organization, family_name="Tanaka")
    contact = Contact.objects.create(organization=other_organization, family_name="Sato")

    assert WebhookEndpoint.objects.count() == 2
    assert ours.intake_token != theirs.intake_token
    assert ours.reference_key != theirs.reference_key
    assert parse_recipient_reference(ours.recipient_reference(lead)) == (
        ours.reference_key,
        "lead",
        lead.pk,
    )
    assert parse_recipient_reference(theirs.recipient_reference(contact)) == (
        theirs.reference_key,
        "contact",
        contact.pk,
    )


@pytest.mark.parametrize(
    "reference", ["", "crm:k:lead", "crm:k:deal:1", "crm::lead:1", "x:k:lead:1", "crm:k:lead:1a"]
)
def test_e4_references_not_made_by_a_connection_are_not_read(reference: str) -> None:
    assert parse_recipient_reference(reference) is None


# --- disabling -------------------------------------------------------------------------------


@pytest.mark.usefixtures("ada_membership")
def test_d6_disabling_records_the_cut_off_and_touches_nothing_at_the_survey_service(
    organization: Organization, ada: User, ada_credentials: Credentials
) -> None:
    connection = enable(organization, ada, ada_credentials)

    disabled = services.disable(organization=organization, by=ada)

    stored = Connection.objects.get()
    assert stored.state == ConnectionState.DISABLED
    assert stored.disabled_at == disabled.disabled_at and stored.disabled_at is not None
    assert stored.disabled_by == ada
    assert stored.accepts_submission_at(stored.disabled_at - datetime.timedelta(seconds=1))
    assert not stored.accepts_submission_at(stored.disabled_at)
    assert current_connection(organization) is None
    # D1: the endpoint stays until the final reconciliation deleted it (leased work).
    assert WebhookEndpoint.objects.get().pk == connection.webhook_endpoint_id
    assert list(
        AuditEntry.objects.of(organization).order_by("id").values_list("action", flat=True)
    ) == [
        AuditAction.INTEGRATION_ENABLED,
        AuditAction.INTEGRATION_DISABLED,
    ]


@pytest.mark.usefixtures("ada_membership")
def test_d6_enabling_again_is_a_new_connection(
    organization: Organization, ada: User, ada_credentials: Credentials
) -> None:
    first = enable(organization, ada, ada_credentials)
    services.disable(organization=organization, by=ada)

    second = enable(organization, ada, ada_credentials)

    assert second.pk != first.pk
    assert second.intake_token != first.intake_token
    assert current_connection(organization) == second


@pytest.mark.usefixtures("ada_membership")
def test_d6_disabling_what_is_not_set_up_is_refused(organization: Organization, ada: User) -> None:
    with pytest.raises(IntegrationError) as refused:
        services.disable(organization=organization, by=ada)

    assert refused.value.code == "not_set_up"
    assert not AuditEntry.objects.exists()


# --- K2: reconnecting ------------------------------------------------------------------------


@pytest.mark.usefixtures("ada_membership")
def test_k2_a_revoked_key_puts_the_connection_in_needs_reconnection_and_a_new_key_fixes_it(
    organization: Organization,
    ada: User,
    ada_credentials: Credentials,
    ada_member: AccountMember,
) -> None:
    connection = enable(organization, ada, ada_credentials)
    new_key = regenerate_key(member=ada_member, by=ada).reveal()

    with pytest.raises(SurveyError) as refused:
        services.call_survey(connection, client.list_surveys)

    assert refused.value.code == ErrorCode.REVOKED_KEY
    connection.refresh_from_db()
    assert connection.state == ConnectionState.NEEDS_RECONNECTION
    assert connection.needs_reconnection_since is not None
    assert current_connection(organization) == connection  # still set up: the page shows it

    reconnected = services.reconnect(organization=organization, by=ada, key=new_key)

    assert reconnected.state == ConnectionState.ENABLED
    assert reconnected.needs_reconnection_since is None
    assert reconnected.credentials().key == new_key
    assert reconnected.webhook_endpoint_id == connection.webhook_endpoint_id  # intake untouched
    assert services.call_survey(reconnected, client.list_surveys) == []
    assert (
        AuditEntry.objects.of(organization)
        .filter(action=AuditAction.INTEGRATION_RECONNECTED, actor=ada)
        .exists()
    )


@pytest.mark.usefixtures("ada_membership")
def test_k2_a_key_of_another_account_does_not_reconnect(
    organization: Organization,
    ada: User,
    ada_credentials: Credentials,
    ada_member: AccountMember,
    carol_credentials: Credentials,
) -> None:
    connection = enable(organization, ada, ada_credentials)
    regenerate_key(member=ada_member, by=ada)
    services.mark_needs_reconnection(connection=connection)

    with pytest.raises(IntegrationError) as refused:
        services.reconnect(
            organization=organization, by=ada, key=carol_credentials.key, email="carol@example.com"
        )

    assert refused.value.code == "other_account"
    assert "Carol's Research" in refused.value.message
    connection.refresh_from_db()
    assert connection.state == ConnectionState.NEEDS_RECONNECTION
    assert connection.credentials() == ada_credentials


@pytest.mark.usefixtures("ada_membership")
def test_k2_a_wrong_new_key_does_not_reconnect(
    organization: Organization, ada: User, ada_credentials: Credentials, ada_member: AccountMember
) -> None:
    connection = enable(organization, ada, ada_credentials)
    services.mark_needs_reconnection(connection=connection)

    with pytest.raises(SurveyError) as refused:
        services.reconnect(organization=organization, by=ada, key="sck_not_the_key")

    assert refused.value.code == ErrorCode.WRONG_KEY
    connection.refresh_from_db()
    assert connection.state == ConnectionState.NEEDS_RECONNECTION
