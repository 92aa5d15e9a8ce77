"""Every multi-row write and every email of the Survey core: accounts, members, portals.

Other parts of the Survey service (API, trust-token endpoint) call these too:
`create_account` and `register_members` keep their signatures. The builder's writes
(surveys, sections, questions) are in `survey.builder.services`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import translation
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from kizuna.identity import mailbox
from kizuna.identity.models import User
from kizuna.survey.audit import services as audit
from kizuna.survey.audit.models import AuditAction
from kizuna.survey.models import AccountMember, MemberRole, Portal, SurveyAccount

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


@dataclass(frozen=True)
class RegistrationResult:
    """Which emails became members now, and which were members already (all lower-case)."""

    registered: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    # New users whose invitation email could not be sent (they can be invited again).
    invitation_failed: list[str] = field(default_factory=list)


EMAIL_MAX_LENGTH = 254  # User.email and Invitation.email (RFC 5321 path limit)


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


def register_members(
    *,
    account: SurveyAccount,
    emails: Iterable[str],
    by: User | None,
    role: str = MemberRole.MEMBER,
) -> RegistrationResult:
    """Make each email a member of `account`; unknown emails get a user and an invitation email.

    Raises ValidationError (nothing written) when any email is invalid.
    """
    addresses = normalize_emails(emails)
    registered: list[str] = []
    existing: list[str] = []
    new_users: list[User] = []
    with transaction.atomic():
        for address in addresses:
            added, new_user = _register_member(account=account, address=address, by=by, role=role)
            (registered if added else existing).append(address)
            if new_user is not None:
                new_users.append(new_user)
        if registered:
            audit.record(
                account=account,
                actor=by,
                action=AuditAction.MEMBER_INVITED,
                data={"emails": registered, "role": role},
            )
    failed = [
        user.email for user in new_users if not send_invitation(user=user, account=account, by=by)
    ]
    return RegistrationResult(registered=registered, existing=existing, invitation_failed=failed)


def _register_member(
    *, account: SurveyAccount, address: str, by: User | None, role: str
) -> tuple[bool, User | None]:
    """(whether a membership was created, the user created for it if any).

    Savepoints make a concurrent registration of the same email count as "existing"
    instead of failing the whole batch.
    """
    created: User | None = None
    user = User.objects.filter(email__iexact=address).first()
    if user is None:
        try:
            with transaction.atomic():
                user = User(email=address, language=by.language if by else "")
                user.set_unusable_password()
                user.save()
                created = user
        except IntegrityError:
            user = User.objects.get(email__iexact=address)
    if AccountMember.objects.filter(account=account, user=user).exists():
        return False, created
    try:
        with transaction.atomic():
            AccountMember.objects.create(account=account, user=user, role=role)
    except IntegrityError:
        return False, created
    return True, created


def password_set_url(user: User) -> str:
    """A one-time link where `user` sets a password (identity's reset-confirm page)."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    try:
        path = reverse("identity:password-reset-confirm", kwargs={"uidb64": uid, "token": token})
    except NoReverseMatch:  # a deployment without identity's reset pages: send to sign-in
        path = reverse("identity:password-reset")
    return settings.KIZUNA_BASE_URL.rstrip("/") + path


def send_invitation(*, user: User, account: SurveyAccount, by: User | None) -> bool:
    """Email `user` a link to set a password and join `account`; False when sending failed."""
    language = user.language or (by.language if by else "") or settings.LANGUAGE_CODE
    url = password_set_url(user)
    with translation.override(language):
        context = {
            "account": account,
            "inviter": by.get_full_name() if by else "",
            "url": url,
            "survey_url": settings.KIZUNA_BASE_URL.rstrip("/") + reverse("survey:home"),
        }
        subject = render_to_string("survey/email/invitation_subject.txt", context).strip()
        body = render_to_string("survey/email/invitation.txt", context)
    message = EmailMessage(subject, body, None, [user.email])
    # The admin who sent it reads it in the local mailbox, without the link: it is the member's.
    mailbox.mark(message, kind=mailbox.MailKind.SURVEY_MEMBER_INVITATION, sent_by=by, secrets=[url])
    try:
        message.send()
    except OSError:  # smtplib errors are OSErrors: the member exists, the email can be resent
        logger.exception("Survey invitation to user %s could not be sent", user.pk)
        return False
    return True


def resend_invitation(*, member: AccountMember, by: User) -> bool:
    """Email the invitation of a member who has not set a password yet again; False when it
    could not be sent (then nothing is recorded)."""
    if not send_invitation(user=member.user, account=member.account, by=by):
        return False
    with transaction.atomic():
        audit.record(
            account=member.account,
            actor=by,
            action=AuditAction.MEMBER_INVITATION_RESENT,
            target=member,
        )
    return True


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
