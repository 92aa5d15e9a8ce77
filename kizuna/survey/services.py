"""Every multi-row write and every email of the Survey core: accounts, members and their
invitations, portals.

Other parts of the Survey service (API, trust-token endpoint) call these too. The
builder's writes (surveys, sections, questions) are in `survey.builder.services`.
"""

from __future__ import annotations

import datetime
import enum
import logging
import math
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from kizuna.identity import mailbox
from kizuna.identity.models import User
from kizuna.lib import ratelimit
from kizuna.survey.audit import services as audit
from kizuna.survey.audit.models import AuditAction
from kizuna.survey.models import (
    AccountMember,
    MemberInvitation,
    MemberRole,
    Portal,
    SurveyAccount,
)
from kizuna.work.leases import WorkStatus

logger = logging.getLogger(__name__)


class SurveyRuleError(Exception):
    """A write the rules refuse (e.g. removing the last administrator); message is for people."""


# --- accounts -----------------------------------------------------------------------------


def first_portal_name(language: str | None) -> str:
    with translation.override(language or translation.get_language() or settings.LANGUAGE_CODE):
        return gettext("My portal")


@transaction.atomic
def create_account(*, name: str, owner: User) -> SurveyAccount:
    """A new account, `owner` its administrator, with a first portal named in their language."""
    account = SurveyAccount.objects.create(name=name.strip(), created_by=owner)
    AccountMember.objects.create(account=account, user=owner, role=MemberRole.ADMINISTRATOR)
    Portal.objects.create(account=account, name=first_portal_name(owner.language))
    return account


# --- members ------------------------------------------------------------------------------


EMAIL_MAX_LENGTH = 254  # User.email and Invitation.email (RFC 5321 path limit)
INVITATION_RATE_SCOPE = "survey-member-invitations"


def normalize_emails(emails: Iterable[str]) -> list[str]:
    """Unique, lower-cased, in the order given; ValidationError naming every invalid address."""
    seen: list[str] = []
    invalid: list[str] = []
    for email in emails:
        address = email.strip().lower()
        if not address:
            continue
        try:
            validate_email(address)
            if len(address) > EMAIL_MAX_LENGTH:
                raise ValidationError("too long")  # more than a user's email column holds
        except ValidationError:
            invalid.append(email.strip())
            continue
        if address not in seen:
            seen.append(address)
    if invalid:
        raise ValidationError(
            _("These are not valid email addresses: %(emails)s"),
            code="invalid",
            params={"emails": ", ".join(invalid)},
        )
    return seen


class InvitationStatus(enum.StrEnum):
    """What inviting an address did (the API's `status` of each address)."""

    INVITED = "invited"  # a new invitation, pending until its person accepts
    ALREADY_INVITED = "already_invited"  # a pending invitation existed: nothing sent again
    EXISTING = "existing"  # already a member: nothing changed


@dataclass(frozen=True)
class InvitationOutcome:
    """One address of invite_members(): what happened, until when an invitation works, and
    whether its email went out (an invitation whose email failed stays, to be sent again)."""

    email: str
    status: InvitationStatus
    expires_at: datetime.datetime | None = None
    mail_sent: bool = False


class MemberInvitationError(Exception):
    """An invitation that cannot be accepted or declined (any more); message is for people."""


class InvitationsThrottled(Exception):
    """The account sent as many invitation emails as KIZUNA_SURVEY_MEMBER_INVITATION_RATE
    allows in its window; nothing was written. `wait`: seconds until the window ends."""

    def __init__(self, *, needed: int, left: int, wait: int) -> None:
        self.needed, self.left, self.wait = needed, left, wait
        super().__init__(str(self.message))

    @property
    def message(self) -> str:
        rate = settings.KIZUNA_SURVEY_MEMBER_INVITATION_RATE
        values = {
            "limit": rate.count,
            "hours": max(1, math.ceil(rate.seconds / 3600)),
            "left": self.left,
            "needed": self.needed,
            "minutes": max(1, math.ceil(self.wait / 60)),
        }
        return (
            gettext(
                "Too many invitation emails: a Survey account may send %(limit)d in %(hours)d "
                "hours. %(left)d can be sent now and this would send %(needed)d. Nothing was sent: "
                "try again in %(minutes)d minutes, or invite fewer people at once."
            )
            % values
        )


def invitation_lifetime() -> datetime.timedelta:
    return datetime.timedelta(days=settings.KIZUNA_SURVEY_MEMBER_INVITATION_DAYS)


def _reserve_invitation_emails(account: SurveyAccount, count: int) -> None:
    """Count `count` invitation emails of `account`, or raise InvitationsThrottled."""
    rate = settings.KIZUNA_SURVEY_MEMBER_INVITATION_RATE
    reservation = ratelimit.reserve(INVITATION_RATE_SCOPE, str(account.pk), rate, count)
    if reservation.wait:
        raise InvitationsThrottled(needed=count, left=reservation.left, wait=reservation.wait)


def invite_members(
    *,
    account: SurveyAccount,
    emails: Iterable[str],
    by: User,
    role: str = MemberRole.MEMBER,
) -> list[InvitationOutcome]:
    """Invite each email to join `account` with `role`: nobody becomes a member before they
    accept, and each new invitation is emailed to its address.

    The outcome does not tell whether an address belongs to a user of this deployment:
    an existing user and a new address are both `invited`. Raises ValidationError
    (nothing written) when an email is invalid, InvitationsThrottled (nothing written,
    nothing sent) when the emails would pass the account's rate.
    """
    addresses = normalize_emails(emails)
    if role not in MemberRole.values:
        raise ValidationError({"role": [gettext("Unknown role.")]})
    now = timezone.now()
    expires_at = now + invitation_lifetime()
    tokens: dict[str, str] = {}
    with transaction.atomic():
        members = {
            email.lower()
            for email in AccountMember.objects.of(account).values_list("user__email", flat=True)
        }
        pending = {
            invitation.email: invitation
            for invitation in MemberInvitation.objects.of(account)
            .select_for_update()
            .filter(email__in=addresses)
        }
        new = [
            address
            for address in addresses
            if address not in members
            and (address not in pending or pending[address].is_expired(now))
        ]
        if new:
            _reserve_invitation_emails(account, len(new))
        for address in new:
            if address in pending:  # expired, its job not run yet: its end is recorded first
                _end(pending.pop(address), action=AuditAction.MEMBER_INVITATION_EXPIRED, actor=None)
            token = _create_invitation(
                account=account, email=address, role=role, by=by, now=now, expires_at=expires_at
            )
            if token is None:  # invited at the same moment by someone else
                pending[address] = MemberInvitation.objects.of(account).get(email=address)
            else:
                tokens[address] = token
    outcomes: list[InvitationOutcome] = []
    for address in addresses:
        if address in tokens:
            sent = _send_invitation_email(
                account=account, email=address, role=role, token=tokens[address], by=by,
                expires_at=expires_at,
            )  # fmt: skip
            outcomes.append(InvitationOutcome(address, InvitationStatus.INVITED, expires_at, sent))
        elif address in pending:
            outcomes.append(
                InvitationOutcome(
                    address, InvitationStatus.ALREADY_INVITED, pending[address].expires_at
                )
            )
        else:
            outcomes.append(InvitationOutcome(address, InvitationStatus.EXISTING))
    return outcomes


def _create_invitation(
    *,
    account: SurveyAccount,
    email: str,
    role: str,
    by: User,
    now: datetime.datetime,
    expires_at: datetime.datetime,
) -> str | None:
    """A pending invitation and its audit entry; its link's token, or None when the address
    was invited by someone else at the same moment."""
    token = secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            invitation = MemberInvitation.objects.create(
                account=account,
                email=email,
                role=role,
                token_hash=MemberInvitation.hash(token),
                invited_by=by,
                created_at=now,
                expires_at=expires_at,
                next_attempt_at=expires_at,  # the job that records its expiry
            )
    except IntegrityError:
        return None
    audit.record(
        account=account,
        actor=by,
        action=AuditAction.MEMBER_INVITATION_SENT,
        target=invitation,
        data={"email": email, "role": role},
    )
    return token


def join_url(token: str) -> str:
    return settings.KIZUNA_BASE_URL.rstrip("/") + reverse("survey:join", args=[token])


def _send_invitation_email(
    *,
    account: SurveyAccount,
    email: str,
    role: str,
    token: str,
    by: User,
    expires_at: datetime.datetime,
) -> bool:
    """Email the invitation's link; False when sending failed (the invitation stays).

    The email is the same whether or not the address has a user here, and in the
    inviter's language: the inviter reads a copy of it in the local mailbox, which
    must not tell them whether the address is someone's account.
    """
    with translation.override(by.language or translation.get_language() or "en"):
        context = {
            "account": account.name,
            "inviter": by.get_full_name(),
            "inviter_email": by.email,
            "role": MemberRole(role).label,
            "url": join_url(token),
            "expires_at": expires_at,
        }
        subject = render_to_string("survey/email/member_invitation_subject.txt", context).strip()
        body = render_to_string("survey/email/member_invitation.txt", context)
    message = EmailMessage(subject, body, None, [email])
    # The inviter reads it in the local mailbox without the link: it is the invitee's.
    mailbox.mark(
        message, kind=mailbox.MailKind.SURVEY_MEMBER_INVITATION, sent_by=by, secrets=[token]
    )
    try:
        message.send()
    except OSError:  # smtplib errors are OSErrors: the invitation stays, to be sent again
        logger.exception("Survey member invitation of account %s could not be sent", account.pk)
        return False
    return True


def resend_member_invitation(*, invitation: MemberInvitation, by: User) -> bool:
    """Email a pending invitation again with a new link, valid for another lifetime.

    False when it could not be sent: then nothing changes and the old link still works.
    Counts against the account's invitation rate (InvitationsThrottled).
    """
    _reserve_invitation_emails(invitation.account, 1)
    token = secrets.token_urlsafe(32)
    expires_at = timezone.now() + invitation_lifetime()
    sent = _send_invitation_email(
        account=invitation.account, email=invitation.email, role=invitation.role, token=token,
        by=by, expires_at=expires_at,
    )  # fmt: skip
    if not sent:
        return False
    with transaction.atomic():
        MemberInvitation.objects.filter(pk=invitation.pk).update(
            token_hash=MemberInvitation.hash(token),
            expires_at=expires_at,
            next_attempt_at=expires_at,
            status=WorkStatus.PENDING,
            attempts=0,
        )
        invitation.expires_at = expires_at
        audit.record(
            account=invitation.account,
            actor=by,
            action=AuditAction.MEMBER_INVITATION_RESENT,
            target=invitation,
            data={"email": invitation.email},
        )
    return True


def _end(invitation: MemberInvitation, *, action: AuditAction, actor: User | None) -> None:
    """Record how a pending invitation ended (withdrawn, declined, expired) and delete it."""
    audit.record(
        account=invitation.account,
        actor=actor,
        action=action,
        target=invitation,
        data={"email": invitation.email},
    )
    invitation.delete()


@transaction.atomic
def withdraw_member_invitation(*, invitation: MemberInvitation, by: User) -> None:
    _end(invitation, action=AuditAction.MEMBER_INVITATION_WITHDRAWN, actor=by)


def _locked_pending(invitation: MemberInvitation) -> MemberInvitation:
    """The invitation locked for its answer; MemberInvitationError when it is gone or expired."""
    locked = (
        MemberInvitation.objects.select_for_update()
        .select_related("account")
        .filter(pk=invitation.pk)
        .first()
    )
    if locked is None:
        raise MemberInvitationError(
            gettext(
                "This invitation is no longer valid: it was accepted, declined or withdrawn. "
                "Ask an administrator of the account for a new one."
            )
        )
    if locked.is_expired():
        raise MemberInvitationError(
            gettext(
                "This invitation has expired. Ask an administrator of the account for a new one."
            )
        )
    return locked


@transaction.atomic
def accept_member_invitation(*, invitation: MemberInvitation, user: User) -> AccountMember:
    """Make `user`, the invited address's user, a member with the invited role."""
    locked = _locked_pending(invitation)
    if user.email.lower() != locked.email:
        raise MemberInvitationError(
            gettext("This invitation is for another email address. Sign in with that address.")
        )
    member, _created = AccountMember.objects.get_or_create(
        account=locked.account, user=user, defaults={"role": locked.role}
    )
    audit.record(
        account=locked.account,
        actor=user,
        action=AuditAction.MEMBER_INVITATION_ACCEPTED,
        target=locked,
        data={"email": locked.email, "role": member.role},
    )
    locked.delete()
    member.account = locked.account
    return member


@transaction.atomic
def create_user_and_accept_member_invitation(
    *, invitation: MemberInvitation, full_name: str, password: str
) -> AccountMember:
    """For an invited address without a password here: create its user (or give the user
    Kizuna made for it a password and a name), then accept. The link's token came to that
    address, as a password-reset link would."""
    locked = _locked_pending(invitation)
    user = User.objects.filter(email__iexact=locked.email).first()
    if user is not None and user.has_usable_password():
        raise MemberInvitationError(
            gettext("A user with this email address exists: sign in first, then accept.")
        )
    if user is None:
        user = User.objects.create_user(locked.email, password, full_name=full_name)
    else:
        user.set_password(password)
        user.full_name = full_name
        user.save(update_fields=["password", "full_name"])
    return accept_member_invitation(invitation=locked, user=user)


@transaction.atomic
def decline_member_invitation(*, invitation: MemberInvitation, by: User | None) -> None:
    """The invited person says no (signed in as `by`, or through the emailed link: None)."""
    _end(_locked_pending(invitation), action=AuditAction.MEMBER_INVITATION_DECLINED, actor=by)


def expire_member_invitation(invitation: MemberInvitation) -> None:
    """The worker's job of a pending invitation, due at its expiry: record that it expired.

    Safe to run twice; an invitation answered, withdrawn or sent again meanwhile is left
    alone (a new expiry schedules the job again).
    """
    with transaction.atomic():
        current = (
            MemberInvitation.objects.select_for_update()
            .select_related("account")
            .filter(pk=invitation.pk)
            .first()
        )
        if current is not None and current.is_expired():
            _end(current, action=AuditAction.MEMBER_INVITATION_EXPIRED, actor=None)


def _administrator_count(account: SurveyAccount) -> int:
    return AccountMember.objects.filter(account=account, role=MemberRole.ADMINISTRATOR).count()


@transaction.atomic
def change_member_role(*, member: AccountMember, role: str, by: User) -> None:
    """Give `member` `role`; the last administrator keeps theirs."""
    if role not in MemberRole.values:
        raise SurveyRuleError(gettext("Unknown role."))
    # Lock the account's administrators so two demotions at once cannot leave none.
    list(
        AccountMember.objects.select_for_update().filter(
            account_id=member.account_id, role=MemberRole.ADMINISTRATOR
        )
    )
    member.refresh_from_db(fields=["role"])
    if (
        member.role == MemberRole.ADMINISTRATOR
        and role != MemberRole.ADMINISTRATOR
        and _administrator_count(member.account) <= 1
    ):
        raise SurveyRuleError(
            gettext("The account needs at least one administrator: make someone else one first.")
        )
    previous = member.role
    if role == previous:
        return
    member.role = role
    member.save(update_fields=["role"])
    audit.record(
        account=member.account,
        actor=by,
        action=AuditAction.MEMBER_ROLE_CHANGED,
        target=member,
        data={"role": role, "previous_role": previous},
    )


@transaction.atomic
def remove_member(*, member: AccountMember, by: User) -> None:
    """Remove `member` from the account (their user stays); never the last administrator."""
    list(
        AccountMember.objects.select_for_update().filter(
            account_id=member.account_id, role=MemberRole.ADMINISTRATOR
        )
    )
    if member.is_administrator and _administrator_count(member.account) <= 1:
        raise SurveyRuleError(
            gettext("The last administrator cannot be removed: make someone else one first.")
        )
    audit.record(account=member.account, actor=by, action=AuditAction.MEMBER_REMOVED, target=member)
    member.delete()


# --- portals ------------------------------------------------------------------------------


@transaction.atomic
def create_portal(*, account: SurveyAccount, name: str, by: User) -> Portal:
    portal = Portal.objects.create(account=account, name=name.strip())
    audit.record(account=account, actor=by, action=AuditAction.PORTAL_CREATED, target=portal)
    return portal


@transaction.atomic
def rename_portal(*, portal: Portal, name: str, by: User) -> None:
    old = Portal.objects.select_for_update().values_list("name", flat=True).get(pk=portal.pk)
    portal.name = name.strip()
    if portal.name == old:
        return
    portal.save(update_fields=["name"])
    audit.record(
        account=portal.account,
        actor=by,
        action=AuditAction.PORTAL_RENAMED,
        target=portal,
        data={"old": old, "new": portal.name},
    )


@transaction.atomic
def delete_portal(*, portal: Portal, by: User) -> None:
    """Delete an empty portal; an account keeps at least one."""
    if portal.surveys.exists():
        raise SurveyRuleError(
            gettext("This portal still has surveys: move or delete them before deleting it.")
        )
    if Portal.objects.filter(account_id=portal.account_id).count() <= 1:
        raise SurveyRuleError(gettext("An account needs at least one portal."))
    audit.record(account=portal.account, actor=by, action=AuditAction.PORTAL_DELETED, target=portal)
    portal.delete()
