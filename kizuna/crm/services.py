"""Every write of the CRM core that touches several rows or sends mail starts here."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from kizuna.crm.audit import services as audit
from kizuna.crm.audit.models import AuditAction
from kizuna.crm.models import (
    PERSON_FIELDS,
    Activity,
    ActivityKind,
    Contact,
    Lead,
    LeadStatus,
    MemberInvitation,
    Membership,
    Organization,
    RecordT,
    Role,
    model_for,
)
from kizuna.identity import mailbox

if TYPE_CHECKING:
    from kizuna.identity.models import User

logger = logging.getLogger(__name__)

INVITATION_LIFETIME = timedelta(days=7)
LEAD_FIELDS = (*PERSON_FIELDS, "status")
CONTACT_FIELDS = (*PERSON_FIELDS, "department")


class CrmError(Exception):
    """A rule of the CRM refused the change; str() is a message for the user."""

    def __init__(self, message: Any) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return str(self.message)


class LastAdministratorError(CrmError):
    pass


class InvitationError(CrmError):
    pass


class ConversionError(CrmError):
    pass


class InvitationEmailError(CrmError):
    """The invitation is saved but its email could not be sent; it can be sent again."""

    def __init__(self, invitation: MemberInvitation) -> None:
        super().__init__(
            _(
                "The invitation for %(email)s is saved, but its email could not be sent. "
                "Use “Send again” under Pending invitations when the mail server works again."
            )
            % {"email": invitation.email}
        )
        self.invitation = invitation


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# Organizations and members


@transaction.atomic
def create_organization(*, name: str, by: User) -> Organization:
    """A new organization with `by` as its first administrator."""
    organization = Organization.objects.create(name=name)
    Membership.objects.create(organization=organization, user=by, role=Role.ADMINISTRATOR)
    return organization


@transaction.atomic
def rename_organization(*, organization: Organization, name: str, by: User) -> None:
    old = (
        Organization.objects.select_for_update()
        .values_list("name", flat=True)
        .get(pk=organization.pk)
    )
    organization.name = name
    if name == old:
        return
    organization.save(update_fields=["name"])
    audit.record(
        organization=organization,
        actor=by,
        action=AuditAction.ORGANIZATION_RENAMED,
        target=organization,
        data={"old": old, "new": name},
    )


def _lock_active_administrators(organization: Organization) -> list[Membership]:
    # Locking every active administrator row serializes concurrent demotions, so
    # two administrators cannot demote each other at once and leave nobody.
    return list(
        Membership.objects.select_for_update()
        .filter(organization=organization, role=Role.ADMINISTRATOR, is_active=True)
        .order_by("pk")
    )


def _refuse_if_last_administrator(membership: Membership) -> None:
    administrators = _lock_active_administrators(membership.organization)
    if [m.pk for m in administrators] == [membership.pk]:
        raise LastAdministratorError(_("An organization needs at least one active administrator."))


@transaction.atomic
def change_role(*, membership: Membership, role: str, by: User) -> None:
    if role not in Role.values:
        raise CrmError(_("Unknown role."))
    if membership.role == Role.ADMINISTRATOR and role != Role.ADMINISTRATOR:
        _refuse_if_last_administrator(membership)
    previous = membership.role
    if role == previous:
        return
    Membership.objects.filter(pk=membership.pk).update(role=role)
    membership.role = role
    audit.record(
        organization=membership.organization,
        actor=by,
        action=AuditAction.MEMBER_ROLE_CHANGED,
        target=membership,
        data={"role": role, "previous_role": previous},
    )


@transaction.atomic
def deactivate_member(*, membership: Membership, by: User) -> None:
    """The member can no longer open the organization; records they own stay theirs."""
    if membership.role == Role.ADMINISTRATOR:
        _refuse_if_last_administrator(membership)
    Membership.objects.filter(pk=membership.pk).update(is_active=False)
    membership.is_active = False
    audit.record(
        organization=membership.organization,
        actor=by,
        action=AuditAction.MEMBER_DEACTIVATED,
        target=membership,
    )


@transaction.atomic
def reactivate_member(*, membership: Membership, by: User) -> None:
    membership.is_active = True
    membership.save(update_fields=["is_active"])
    audit.record(
        organization=membership.organization,
        actor=by,
        action=AuditAction.MEMBER_REACTIVATED,
        target=membership,
    )


def invite_member(
    *, organization: Organization, email: str, role: str, by: User
) -> tuple[MemberInvitation, str]:
    """Store an invitation (only the token's hash) and email its link; returns the token too.

    InvitationEmailError when the email could not be sent: the invitation stays, to be sent
    again with resend_invitation().
    """
    email = email.strip().lower()
    if Membership.objects.filter(
        organization=organization, user__email__iexact=email, is_active=True
    ).exists():
        raise InvitationError(_("This person is already a member of the organization."))
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    with transaction.atomic():
        # A new invitation replaces a pending one for the same address.
        MemberInvitation.objects.filter(
            organization=organization, email__iexact=email, accepted_at__isnull=True
        ).delete()
        invitation = MemberInvitation.objects.create(
            organization=organization,
            email=email,
            role=role,
            token_hash=hash_token(token),
            invited_by=by,
            created_at=now,
            expires_at=now + INVITATION_LIFETIME,
        )
        audit.record(
            organization=organization,
            actor=by,
            action=AuditAction.INVITATION_SENT,
            target=invitation,
            data={"email": email, "role": role},
        )
    _send_invitation_email(invitation, token, invitation.expires_at, by)
    return invitation, token


def resend_invitation(*, invitation: MemberInvitation, by: User) -> str:
    """Email a pending invitation again with a new link, valid for another INVITATION_LIFETIME;
    returns its token. Once that email is sent the old link stops working; when it cannot be
    sent (InvitationEmailError) nothing changes and the old link still works."""
    token = secrets.token_urlsafe(32)
    expires_at = timezone.now() + INVITATION_LIFETIME
    _send_invitation_email(invitation, token, expires_at, by)
    with transaction.atomic():
        invitation.token_hash, invitation.expires_at = hash_token(token), expires_at
        invitation.save(update_fields=["token_hash", "expires_at"])
        audit.record(
            organization=invitation.organization,
            actor=by,
            action=AuditAction.INVITATION_RESENT,
            target=invitation,
        )
    return token


def _send_invitation_email(
    invitation: MemberInvitation, token: str, expires_at: datetime, by: User
) -> None:
    from kizuna.identity.models import User as UserModel

    invitee = UserModel.objects.filter(email__iexact=invitation.email).first()
    language = (invitee.language if invitee else "") or translation.get_language() or "en"
    with translation.override(language):
        context = {
            "organization": invitation.organization,
            "inviter": by,
            "url": settings.KIZUNA_BASE_URL + reverse("crm:invitation", args=[token]),
            "expires_at": expires_at,
        }
        subject = render_to_string("crm/invitation_subject.txt", context).strip()
        body = render_to_string("crm/invitation_email.txt", context)
    message = EmailMessage(subject, body, None, [invitation.email])
    mailbox.mark(message, kind=mailbox.MailKind.CRM_INVITATION, sent_by=by, secrets=[token])
    try:
        message.send()
    except OSError as error:  # smtplib's errors are OSErrors too
        logger.exception("CRM invitation %s could not be sent", invitation.pk)
        raise InvitationEmailError(invitation) from error


@transaction.atomic
def revoke_invitation(*, invitation: MemberInvitation, by: User) -> None:
    audit.record(
        organization=invitation.organization,
        actor=by,
        action=AuditAction.INVITATION_REVOKED,
        target=invitation,
        data={"email": invitation.email},
    )
    invitation.delete()


def invitation_problem(invitation: MemberInvitation | None, *, now: datetime) -> Any:
    """Why an invitation cannot be accepted, or None when it can."""
    if invitation is None:
        return _("This invitation link is not valid. Ask an administrator for a new one.")
    if invitation.accepted_at is not None:
        return _("This invitation has already been accepted.")
    if invitation.expires_at <= now:
        return _("This invitation has expired. Ask an administrator for a new one.")
    return None


@transaction.atomic
def accept_invitation(*, token: str, user: User) -> Membership:
    """Make `user` a member with the invited role; the link works once, for its address."""
    invitation = (
        MemberInvitation.objects.select_for_update()
        .select_related("organization")
        .filter(token_hash=hash_token(token))
        .first()
    )
    now = timezone.now()
    problem = invitation_problem(invitation, now=now)
    if problem is not None:
        raise InvitationError(problem)
    assert invitation is not None
    if user.email.lower() != invitation.email.lower():
        raise InvitationError(
            _("This invitation is for another email address. Sign in with that address.")
        )
    membership, _created = Membership.objects.update_or_create(
        organization=invitation.organization,
        user=user,
        defaults={"role": invitation.role, "is_active": True},
    )
    invitation.accepted_at = now
    invitation.save(update_fields=["accepted_at"])
    audit.record(
        organization=invitation.organization,
        actor=user,
        action=AuditAction.INVITATION_ACCEPTED,
        target=membership,
        data={"email": invitation.email, "role": invitation.role},
    )
    return membership


@transaction.atomic
def create_account_and_accept_invitation(
    *, token: str, full_name: str, password: str
) -> Membership:
    """For an invited address with no account yet: create the account, then join."""
    from kizuna.identity.models import User as UserModel

    invitation = MemberInvitation.objects.filter(token_hash=hash_token(token)).first()
    problem = invitation_problem(invitation, now=timezone.now())
    if problem is not None:
        raise InvitationError(problem)
    assert invitation is not None
    if UserModel.objects.filter(email__iexact=invitation.email).exists():
        raise InvitationError(_("An account with this email address exists: sign in first."))
    user = UserModel.objects.create_user(invitation.email, password, full_name=full_name)
    return accept_invitation(token=token, user=user)


# Leads, contacts and their timeline


def record_activity(
    *,
    record: Lead | Contact,
    kind: str,
    actor: User | None = None,
    summary: str = "",
    data: Mapping[str, Any] | None = None,
) -> Activity:
    """Add one event to a record's timeline (a converted lead's events show on its contact too)."""
    return Activity.objects.create(**_activity_fields(record, kind, actor, summary, data))


def _activity_fields(
    record: Lead | Contact,
    kind: str,
    actor: User | None,
    summary: str = "",
    data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "organization_id": record.organization_id,
        "kind": kind,
        "actor": actor,
        "summary": summary,
        "data": dict(data or {}),
    }
    if isinstance(record, Lead):
        fields["lead"] = record
        fields["contact_id"] = record.converted_contact_id
    else:
        fields["contact"] = record
    return fields


def _clean_values(model: type[Lead] | type[Contact], values: Mapping[str, Any]) -> dict[str, Any]:
    allowed = LEAD_FIELDS if model is Lead else CONTACT_FIELDS
    unknown = set(values) - set(allowed)
    if unknown:
        raise ValueError(f"Not a field of {model.__name__}: {sorted(unknown)}")
    return dict(values)


@transaction.atomic
def _create_record(
    model: type[RecordT], *, organization: Organization, by: User, values: Mapping[str, Any]
) -> RecordT:
    now = timezone.now()
    record = model.objects.create(
        organization=organization,
        created_by=by,
        modified_by=by,
        created_at=now,
        modified_at=now,
        **_clean_values(model, values),
    )
    record_activity(record=record, kind=ActivityKind.CREATED, actor=by)
    return record


def create_lead(*, organization: Organization, by: User, values: Mapping[str, Any]) -> Lead:
    return _create_record(Lead, organization=organization, by=by, values=values)


def create_contact(*, organization: Organization, by: User, values: Mapping[str, Any]) -> Contact:
    return _create_record(Contact, organization=organization, by=by, values=values)


def _comparable(record: Lead | Contact, name: str) -> Any:
    if name == "owner":
        return record.owner_id
    return getattr(record, name)


def _new_comparable(name: str, value: Any) -> Any:
    if name == "owner":
        return value.pk if value is not None else None
    return value


@transaction.atomic
def update_record(*, record: Lead | Contact, by: User, values: Mapping[str, Any]) -> list[str]:
    """Save the changed fields and note their names on the timeline; returns those names."""
    model = type(record)
    values = _clean_values(model, values)
    current = model.objects.select_for_update().get(pk=record.pk)
    changed = [
        name
        for name, value in values.items()
        if _comparable(current, name) != _new_comparable(name, value)
    ]
    if not changed:
        return []
    for name in changed:
        setattr(current, name, values[name])
    current.modified_by = by
    current.modified_at = timezone.now()
    current.save(update_fields=[*changed, "modified_by", "modified_at"])
    record_activity(record=current, kind=ActivityKind.EDITED, actor=by, data={"fields": changed})
    return changed


def records_of(organization: Organization, module: str, ids: Iterable[int]) -> QuerySet[Any]:
    return model_for(module).objects.filter(organization=organization, pk__in=list(ids))


@transaction.atomic
def delete_records(*, organization: Organization, module: str, ids: Iterable[int], by: User) -> int:
    """Delete the records of this organization among `ids`, with the timeline only they had.

    One audit entry names them all (the one record itself when there is one).
    """
    records = list(records_of(organization, module, ids).order_by("pk"))
    record_ids = [each.pk for each in records]
    if not records:
        return 0
    audit.record(
        organization=organization,
        actor=by,
        action=AuditAction.RECORDS_DELETED,
        target=records[0] if len(records) == 1 else None,
        data={"module": module, "count": len(records), "ids": record_ids},
    )
    if module == "leads":
        Activity.objects.filter(lead_id__in=record_ids, contact__isnull=True).delete()
    else:
        Activity.objects.filter(contact_id__in=record_ids, lead__isnull=True).delete()
    model_for(module).objects.filter(pk__in=record_ids).delete()
    return len(record_ids)


def _bulk_update(
    *,
    organization: Organization,
    module: str,
    ids: Iterable[int],
    by: User,
    field_name: str,
    value: Any,
) -> int:
    records = records_of(organization, module, ids)
    column = "owner_id" if field_name == "owner" else field_name
    stored = value.pk if field_name == "owner" and value is not None else value
    if field_name == "status":
        records = records.exclude(status=LeadStatus.CONVERTED)
    if stored is None:
        records = records.exclude(**{f"{column}__isnull": True})
    else:
        records = records.exclude(**{column: stored})
    changing = list(records)
    if not changing:
        return 0
    now = timezone.now()
    records.model.objects.filter(pk__in=[r.pk for r in changing]).update(
        **{column: stored, "modified_by": by, "modified_at": now}
    )
    Activity.objects.bulk_create(
        Activity(
            **_activity_fields(record, ActivityKind.EDITED, by, data={"fields": [field_name]}),
            created_at=now,
        )
        for record in changing
    )
    return len(changing)


@transaction.atomic
def change_owner(
    *, organization: Organization, module: str, ids: Iterable[int], owner: User | None, by: User
) -> int:
    """Give the selected records to `owner`; returns how many changed."""
    return _bulk_update(
        organization=organization, module=module, ids=ids, by=by, field_name="owner", value=owner
    )


@transaction.atomic
def change_status(*, organization: Organization, ids: Iterable[int], status: str, by: User) -> int:
    """Set the status of the selected leads (converted ones keep theirs); returns the count."""
    if status not in LeadStatus.values or status == LeadStatus.CONVERTED:
        raise CrmError(_("Choose a lead status."))
    return _bulk_update(
        organization=organization, module="leads", ids=ids, by=by, field_name="status", value=status
    )


@transaction.atomic
def convert_lead(*, lead: Lead, by: User) -> Contact:
    """Turn a lead into a contact; the lead's timeline becomes the contact's too."""
    current = Lead.objects.select_for_update().get(pk=lead.pk)
    if current.status == LeadStatus.CONVERTED:
        raise ConversionError(_("This lead has already been converted."))
    now = timezone.now()
    contact = Contact.objects.create(
        organization_id=current.organization_id,
        created_by=by,
        modified_by=by,
        created_at=now,
        modified_at=now,
        **{name: getattr(current, name) for name in PERSON_FIELDS},
    )
    current.status = LeadStatus.CONVERTED
    current.converted_contact = contact
    current.converted_at = now
    current.modified_by = by
    current.modified_at = now
    current.save(
        update_fields=["status", "converted_contact", "converted_at", "modified_by", "modified_at"]
    )
    Activity.objects.filter(lead=current).update(contact=contact)
    Activity.objects.create(
        organization_id=current.organization_id,
        lead=current,
        contact=contact,
        kind=ActivityKind.CONVERTED,
        actor=by,
        created_at=now,
        data={"lead_id": current.pk, "contact_id": contact.pk},
    )
    lead.status, lead.converted_contact, lead.converted_at = (
        current.status,
        contact,
        now,
    )
    return contact
