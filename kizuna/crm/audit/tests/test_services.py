"""`by` feeds the audit trail: every audited CRM service writes exactly one entry, in the
transaction of its change, naming who did what to which object; a refused change writes none."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction

from kizuna.crm import services
from kizuna.crm.audit.models import AuditAction, AuditEntry
from kizuna.crm.audit.services import record
from kizuna.crm.imports import services as import_services
from kizuna.crm.mail import services as mail_services
from kizuna.crm.models import Lead, MemberInvitation, Membership, Organization, Role
from kizuna.identity.models import User
from kizuna.testing.csvfiles import EN_HEADERS, csv_bytes
from kizuna.testing.personas import make_user

pytestmark = pytest.mark.django_db


def only_entry(organization: Organization) -> AuditEntry:
    """The one entry of `organization` (fails when there are none or several)."""
    [entry] = AuditEntry.objects.filter(organization=organization)
    return entry


def summary(entry: AuditEntry) -> tuple[Any, ...]:
    return (entry.action, entry.actor, entry.actor_email, entry.target_type, entry.target_id)


def lead(organization: Organization, by: User, family_name: str) -> Lead:
    return services.create_lead(
        organization=organization, by=by, values={"family_name": family_name}
    )


@pytest.fixture
def charlie_entry(
    charlie: User, charlie_membership: Membership, other_organization: Organization
) -> AuditEntry:
    """An entry of Sato Trading, which no count of Kizuna Demo's entries may include."""
    services.rename_organization(
        organization=other_organization, name="Sato Trading KK", by=charlie
    )
    return only_entry(other_organization)


@pytest.mark.usefixtures("ada_membership")
def test_renaming_the_organization_keeps_the_old_and_new_names(
    ada: User, organization: Organization, charlie_entry: AuditEntry
) -> None:
    services.rename_organization(organization=organization, name="Kizuna KK", by=ada)

    entry = only_entry(organization)
    assert summary(entry) == (
        AuditAction.ORGANIZATION_RENAMED,
        ada,
        "ada@example.com",
        "crm.organization",
        organization.pk,
    )
    assert entry.data == {"old": "Kizuna Demo", "new": "Kizuna KK"}
    assert entry.sentence() == (
        "Ada Lovelace renamed the organization from “Kizuna Demo” to “Kizuna KK”."
    )


@pytest.mark.usefixtures("ada_membership")
def test_saving_the_same_name_again_records_nothing(ada: User, organization: Organization) -> None:
    services.rename_organization(organization=organization, name="Kizuna Demo", by=ada)
    assert AuditEntry.objects.count() == 0


@pytest.mark.usefixtures("ada_membership")
def test_changing_a_role_names_the_member_and_both_roles(
    ada: User, bob_membership: Membership, charlie_entry: AuditEntry
) -> None:
    services.change_role(membership=bob_membership, role=Role.ADMINISTRATOR, by=ada)

    entry = only_entry(bob_membership.organization)
    assert summary(entry) == (
        AuditAction.MEMBER_ROLE_CHANGED,
        ada,
        "ada@example.com",
        "crm.membership",
        bob_membership.pk,
    )
    assert entry.data == {"role": "admin", "previous_role": "standard"}
    assert entry.sentence() == "Ada Lovelace changed Bob Smith's role to Administrator."


def test_a_refused_demotion_of_the_last_administrator_records_nothing(
    ada_membership: Membership, bob_membership: Membership
) -> None:
    with pytest.raises(services.LastAdministratorError):
        services.change_role(membership=ada_membership, role=Role.STANDARD, by=ada_membership.user)
    with pytest.raises(services.LastAdministratorError):
        services.deactivate_member(membership=ada_membership, by=ada_membership.user)

    assert AuditEntry.objects.count() == 0


@pytest.mark.usefixtures("ada_membership")
def test_deactivating_and_reactivating_write_one_entry_each(
    ada: User, bob_membership: Membership
) -> None:
    services.deactivate_member(membership=bob_membership, by=ada)
    services.reactivate_member(membership=bob_membership, by=ada)

    entries = AuditEntry.objects.order_by("pk")
    assert [summary(entry) for entry in entries] == [
        (
            AuditAction.MEMBER_DEACTIVATED,
            ada,
            "ada@example.com",
            "crm.membership",
            bob_membership.pk,
        ),
        (
            AuditAction.MEMBER_REACTIVATED,
            ada,
            "ada@example.com",
            "crm.membership",
            bob_membership.pk,
        ),
    ]
    assert [entry.sentence() for entry in entries] == [
        "Ada Lovelace deactivated Bob Smith.",
        "Ada Lovelace reactivated Bob Smith.",
    ]


@pytest.mark.usefixtures("ada_membership")
def test_an_invitation_sent_again_withdrawn_each_write_one_entry(
    ada: User, organization: Organization
) -> None:
    invitation, _token = services.invite_member(
        organization=organization, email="New@Example.com", role=Role.ADMINISTRATOR, by=ada
    )
    invitation_pk = invitation.pk
    services.resend_invitation(invitation=invitation, by=ada)
    services.revoke_invitation(invitation=invitation, by=ada)

    entries = list(AuditEntry.objects.order_by("pk"))
    assert [(e.action, e.actor, e.target_id, e.target_repr) for e in entries] == [
        (AuditAction.INVITATION_SENT, ada, invitation_pk, "new@example.com"),
        (AuditAction.INVITATION_RESENT, ada, invitation_pk, "new@example.com"),
        (AuditAction.INVITATION_REVOKED, ada, invitation_pk, "new@example.com"),
    ]
    assert [entry.sentence() for entry in entries] == [
        "Ada Lovelace invited new@example.com as Administrator.",
        "Ada Lovelace sent the invitation to new@example.com again.",
        "Ada Lovelace withdrew the invitation to new@example.com.",
    ]


@pytest.mark.usefixtures("ada_membership")
def test_inviting_an_active_member_is_refused_and_records_nothing(
    ada: User, bob_membership: Membership
) -> None:
    with pytest.raises(services.InvitationError):
        services.invite_member(
            organization=bob_membership.organization,
            email="bob@example.com",
            role=Role.STANDARD,
            by=ada,
        )
    assert AuditEntry.objects.count() == 0


@pytest.mark.usefixtures("ada_membership")
def test_accepting_an_invitation_is_recorded_with_the_new_member_as_actor(
    ada: User, organization: Organization
) -> None:
    invitation, token = services.invite_member(
        organization=organization, email="dan@example.com", role=Role.STANDARD, by=ada
    )
    dan = make_user("dan@example.com", full_name="Dan Brown")
    membership = services.accept_invitation(token=token, user=dan)

    entry = AuditEntry.objects.get(action=AuditAction.INVITATION_ACCEPTED)
    assert summary(entry) == (
        AuditAction.INVITATION_ACCEPTED,
        dan,
        "dan@example.com",
        "crm.membership",
        membership.pk,
    )
    assert entry.sentence() == "Dan Brown accepted an invitation and joined as Standard."
    # A second use of the link is refused and writes nothing more.
    with pytest.raises(services.InvitationError):
        services.accept_invitation(token=token, user=dan)
    assert AuditEntry.objects.filter(action=AuditAction.INVITATION_ACCEPTED).count() == 1
    assert MemberInvitation.objects.get(pk=invitation.pk).accepted_at is not None


@pytest.mark.usefixtures("ada_membership", "charlie_membership")
def test_a_bulk_delete_is_one_entry_with_the_count_and_the_ids(
    ada: User, organization: Organization, other_organization: Organization, charlie: User
) -> None:
    mine = [lead(organization, ada, name) for name in ("Sato", "Suzuki", "Takahashi")]
    theirs = lead(other_organization, charlie, "Ito")

    deleted = services.delete_records(
        organization=organization,
        module="leads",
        ids=[mine[0].pk, mine[2].pk, theirs.pk],
        by=ada,
    )

    assert deleted == 2
    entry = only_entry(organization)
    assert summary(entry) == (AuditAction.RECORDS_DELETED, ada, "ada@example.com", "", None)
    assert entry.data == {"module": "leads", "count": 2, "ids": [mine[0].pk, mine[2].pk]}
    assert entry.sentence() == "Ada Lovelace deleted 2 leads."
    assert AuditEntry.objects.filter(organization=other_organization).count() == 0


@pytest.mark.usefixtures("ada_membership")
def test_deleting_one_contact_names_it(ada: User, organization: Organization) -> None:
    contact = services.create_contact(
        organization=organization, by=ada, values={"family_name": "Hopper", "given_name": "Grace"}
    )
    services.delete_records(organization=organization, module="contacts", ids=[contact.pk], by=ada)

    entry = only_entry(organization)
    assert (entry.target_type, entry.target_id, entry.target_repr) == (
        "crm.contact",
        contact.pk,
        "Grace Hopper",
    )
    assert entry.sentence() == "Ada Lovelace deleted the contact “Grace Hopper”."


@pytest.mark.usefixtures("ada_membership")
def test_deleting_nothing_records_nothing(ada: User, organization: Organization) -> None:
    assert services.delete_records(organization=organization, module="leads", ids=[], by=ada) == 0
    assert AuditEntry.objects.count() == 0


@pytest.mark.usefixtures("ada_membership")
def test_an_import_records_who_started_it_and_what_it_created(
    ada: User, organization: Organization
) -> None:
    rows = [["Sato", "Hanako", "", "hanako@example.com", "", "", "", ""]]
    job = import_services.create_import_job(
        organization=organization,
        by=ada,
        module="leads",
        filename="people.csv",
        data=csv_bytes([EN_HEADERS, *rows]),
    )
    import_services.start_import(job=job, by=ada, skip_bad_rows=False, allow_duplicates=False)

    entries = list(AuditEntry.objects.order_by("pk"))
    assert [(e.action, e.actor, e.target_type, e.target_id) for e in entries] == [
        (AuditAction.IMPORT_STARTED, ada, "crm_imports.importjob", job.pk),
        (AuditAction.IMPORT_FINISHED, ada, "crm_imports.importjob", job.pk),
    ]
    assert entries[1].data == {"module": "leads", "created": 1, "skipped": 0}
    assert [entry.sentence() for entry in entries] == [
        "Ada Lovelace started importing “people.csv” into leads.",
        "Ada Lovelace's import of “people.csv” finished: 1 created, 0 skipped.",
    ]


@pytest.mark.usefixtures("ada_membership")
def test_an_import_that_fails_on_a_bad_row_records_no_finish(
    ada: User, organization: Organization
) -> None:
    rows = [["", "no family name", "", "not an email", "", "", "", ""]]
    job = import_services.create_import_job(
        organization=organization,
        by=ada,
        module="leads",
        filename="bad.csv",
        data=csv_bytes([EN_HEADERS, *rows]),
    )
    import_services.start_import(job=job, by=ada, skip_bad_rows=False, allow_duplicates=False)

    assert list(AuditEntry.objects.values_list("action", flat=True)) == [AuditAction.IMPORT_STARTED]
    assert Lead.objects.count() == 0


@pytest.mark.usefixtures("ada_membership")
def test_email_templates_created_changed_and_deleted(ada: User, organization: Organization) -> None:
    fields = {"subject": "Hello", "body_html": "<p>Hi</p>", "body_text": ""}
    template = mail_services.create_template(
        organization=organization, by=ada, module="leads", name="Welcome", **fields
    )
    # Saved as it is: nothing changed, nothing recorded.
    mail_services.update_template(template=template, by=ada, name="Welcome", **fields)
    mail_services.update_template(template=template, by=ada, name="Welcome!", **fields)
    template_pk = template.pk
    mail_services.delete_template(template=template, by=ada)

    entries = list(AuditEntry.objects.order_by("pk"))
    assert [(e.action, e.target_id) for e in entries] == [
        (AuditAction.EMAIL_TEMPLATE_CREATED, template_pk),
        (AuditAction.EMAIL_TEMPLATE_CHANGED, template_pk),
        (AuditAction.EMAIL_TEMPLATE_DELETED, template_pk),
    ]
    assert entries[1].data == {"fields": ["name"]}
    assert [entry.sentence() for entry in entries] == [
        "Ada Lovelace created the email template “Welcome”.",
        "Ada Lovelace changed the email template “Welcome!”.",
        "Ada Lovelace deleted the email template “Welcome!”.",
    ]


@pytest.mark.usefixtures("ada_membership")
def test_the_entry_and_the_change_commit_or_roll_back_together(
    ada: User, bob_membership: Membership
) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        services.change_role(membership=bob_membership, role=Role.ADMINISTRATOR, by=ada)
        raise RuntimeError("the request failed after the change")

    bob_membership.refresh_from_db()
    assert bob_membership.role == Role.STANDARD
    assert AuditEntry.objects.count() == 0


@pytest.mark.usefixtures("ada_membership")
def test_an_entry_outlives_its_actor_and_keeps_their_email(
    ada: User, bob_membership: Membership
) -> None:
    dan = make_user("dan@example.com", full_name="Dan Brown")
    Membership.objects.create(
        organization=bob_membership.organization, user=dan, role=Role.ADMINISTRATOR
    )
    services.deactivate_member(membership=bob_membership, by=dan)
    dan.delete()

    entry = only_entry(bob_membership.organization)
    assert (entry.actor, entry.actor_email) == (None, "dan@example.com")
    assert entry.sentence() == "dan@example.com deactivated Bob Smith."


@pytest.mark.usefixtures("ada_membership")
def test_the_integration_records_its_actions_through_record(
    ada: User, organization: Organization
) -> None:
    for action in (
        AuditAction.INTEGRATION_ENABLED,
        AuditAction.INTEGRATION_RECONNECTED,
        AuditAction.INTEGRATION_DISABLED,
    ):
        record(organization=organization, actor=ada, action=action)
    record(organization=organization, actor=None, action=AuditAction.INTEGRATION_DISABLED)

    entries = AuditEntry.objects.order_by("pk")
    assert [(entry.action, entry.sentence()) for entry in entries] == [
        ("integration.enabled", "Ada Lovelace enabled the Survey integration."),
        ("integration.reconnected", "Ada Lovelace reconnected the Survey integration."),
        ("integration.disabled", "Ada Lovelace disabled the Survey integration."),
        ("integration.disabled", "Kizuna disabled the Survey integration."),
    ]
