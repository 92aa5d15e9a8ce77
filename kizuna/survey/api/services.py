"""Writes behind the Survey REST API: invitation batches, the trust token (checked and
throttled) and its account lookup.

Account creation and member registration are the Survey core's
(survey.services.create_account / register_members); SC keys are survey.keys'.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy

from kizuna import config
from kizuna.identity.models import User
from kizuna.lib import crypto, ratelimit
from kizuna.lib.text import validate_single_line
from kizuna.survey import services as survey_services
from kizuna.survey.keys import services as key_services
from kizuna.survey.keys.models import ServiceKey
from kizuna.survey.models import AccountMember, Invitation, MemberRole, Survey, SurveyAccount

MAX_INVITATIONS_PER_BATCH = 1000


@dataclass(frozen=True)
class Recipient:
    recipient_reference: str
    email: str = ""
    name: str = ""
    expires_at: datetime.datetime | None = None


def invitation_link(invitation: Invitation) -> str:
    """The invited person's own link (DESIGN.md §5: /s/i/<token>/)."""
    return settings.KIZUNA_BASE_URL + reverse("survey_public:invitation", args=[invitation.token])


def invitation_state(invitation: Invitation, *, now: datetime.datetime | None = None) -> str:
    """sent, opened, started, completed or expired (an unfinished invitation past its expiry)."""
    now = now or timezone.now()
    if invitation.completed_at:
        return "completed"
    if invitation.expires_at and invitation.expires_at <= now:
        return "expired"
    if invitation.started_at:
        return "started"
    if invitation.opened_at:
        return "opened"
    return "sent"


def _validate_recipients(recipients: Sequence[Recipient]) -> None:
    errors: dict[str, list[str]] = {}
    if not recipients:
        errors["invitations"] = [str(_("Send at least one invitation."))]
    if len(recipients) > MAX_INVITATIONS_PER_BATCH:
        errors["invitations"] = [
            str(
                _("Send at most %(limit)d invitations at once (this batch has %(count)d).")
                % {"limit": MAX_INVITATIONS_PER_BATCH, "count": len(recipients)}
            )
        ]
        raise ValidationError(errors)
    seen: dict[str, int] = {}
    now = timezone.now()
    for index, recipient in enumerate(recipients):
        prefix = f"invitations.{index}"
        reference = recipient.recipient_reference.strip()
        if not reference:
            errors[f"{prefix}.recipient_reference"] = [str(_("A recipient reference is required."))]
        elif reference in seen:
            errors[f"{prefix}.recipient_reference"] = [
                str(
                    _("This recipient reference is already in this batch (item %(index)d).")
                    % {"index": seen[reference]}
                )
            ]
        else:
            seen[reference] = index
        if len(reference) > 200:
            errors[f"{prefix}.recipient_reference"] = [str(_("Use at most 200 characters."))]
        if recipient.email:
            try:
                validate_email(recipient.email.strip())
            except ValidationError:
                errors[f"{prefix}.email"] = [str(_("Enter a valid email address."))]
            else:
                if len(recipient.email.strip()) > survey_services.EMAIL_MAX_LENGTH:
                    errors[f"{prefix}.email"] = [str(_("Use at most 254 characters."))]
        if len(recipient.name) > 200:
            errors[f"{prefix}.name"] = [str(_("Use at most 200 characters."))]
        else:
            # The name may go into the To header of the mail that carries the link.
            try:
                validate_single_line(recipient.name)
            except ValidationError as error:
                errors[f"{prefix}.name"] = [str(message) for message in error.messages]
        if recipient.expires_at is not None:
            if timezone.is_naive(recipient.expires_at):
                errors[f"{prefix}.expires_at"] = [
                    str(_("Give the time with its time zone, e.g. 2026-12-31T23:59:00+09:00."))
                ]
            elif recipient.expires_at <= now:
                errors[f"{prefix}.expires_at"] = [str(_("The expiry must be in the future."))]
    if errors:
        raise ValidationError(errors)


def create_invitations(
    *, survey: Survey, recipients: Sequence[Recipient]
) -> list[tuple[Invitation, bool]]:
    """One invitation per recipient, in order, with whether it was created now.

    Idempotent per survey and recipient reference: an invitation that exists is
    returned with the same token, so a CRM may safely retry a batch. Inviting the
    same person again renews their link: an existing invitation not completed yet
    takes the later expiry of the two (none: it never expires).
    Raises ValidationError naming each bad item; nothing is written then.
    """
    _validate_recipients(recipients)
    references = [r.recipient_reference.strip() for r in recipients]
    with transaction.atomic():
        existing = set(
            Invitation.objects.filter(
                survey=survey, recipient_reference__in=references
            ).values_list("recipient_reference", flat=True)
        )
        # ignore_conflicts: a concurrent batch with the same references wins quietly,
        # and both callers read back the same rows below.
        Invitation.objects.bulk_create(
            [
                Invitation(
                    survey=survey,
                    recipient_reference=recipient.recipient_reference.strip(),
                    email=recipient.email.strip(),
                    name=recipient.name.strip(),
                    expires_at=recipient.expires_at,
                )
                for recipient in recipients
                if recipient.recipient_reference.strip() not in existing
            ],
            ignore_conflicts=True,
        )
        # With their responses: the answer names each one's response_id, and reading it
        # per invitation was a query each (1,000 a batch, most of a bulk send's Survey CPU).
        by_reference = {
            invitation.recipient_reference: invitation
            for invitation in Invitation.objects.select_related("response").filter(
                survey=survey, recipient_reference__in=references
            )
        }
        renewed = []
        for recipient in recipients:
            invitation = by_reference[recipient.recipient_reference.strip()]
            if _renews(invitation, recipient.expires_at):
                invitation.expires_at = recipient.expires_at
                renewed.append(invitation)
        Invitation.objects.bulk_update(renewed, ["expires_at"], batch_size=500)
    return [(by_reference[ref], ref not in existing) for ref in references]


def _renews(invitation: Invitation, expires_at: datetime.datetime | None) -> bool:
    """Whether inviting again with `expires_at` gives `invitation` a longer life."""
    if invitation.completed_at is not None or invitation.expires_at is None:
        return False
    return expires_at is None or expires_at > invitation.expires_at


class TrustTokenRefused(Exception):
    """A request without the trust token; `code` and `status` are the API's answer."""

    def __init__(
        self, code: str, message: str | Promise, *, status: int, retry_after: int = 0
    ) -> None:
        super().__init__(str(message))
        self.code = code
        self.message = message
        self.status = status
        self.retry_after = retry_after


def check_trust_token(*, token: str, address: str) -> None:
    """Accept the deployment's trust token; count a wrong one against the client address.

    The right token is checked first and always accepted: a co-deployed CRM shares its
    address with everyone behind the same proxy, and their failures must never lock it
    out. Past KIZUNA_TRUST_TOKEN_MAX_FAILURES wrong tokens in the window, an address's
    wrong tokens get 429 instead of 401 until the window ends.
    """
    expected = settings.KIZUNA_TRUST_TOKEN
    if token and expected and crypto.constant_time_equals(token, expected):
        return
    limit = config.Rate(
        settings.KIZUNA_TRUST_TOKEN_MAX_FAILURES, settings.KIZUNA_TRUST_TOKEN_WINDOW_SECONDS
    )
    wait = ratelimit.take("trust-token-failures", address, limit)
    if wait:
        minutes = max(1, math.ceil(wait / 60))
        raise TrustTokenRefused(
            "throttled",
            ngettext_lazy(
                "Too many wrong trust tokens came from your address: wrong ones are refused "
                "for %(minutes)d more minute. The right token is still accepted.",
                "Too many wrong trust tokens came from your address: wrong ones are refused "
                "for %(minutes)d more minutes. The right token is still accepted.",
                "minutes",
            )
            % {"minutes": minutes},
            status=429,
            retry_after=wait,
        )
    raise TrustTokenRefused(
        "invalid_trust_token",
        _("This route needs the deployment's trust token (X-Kizuna-Trust)."),
        status=401,
    )


@dataclass(frozen=True)
class AccountKey:
    account: SurveyAccount
    key: ServiceKey


@dataclass(frozen=True)
class AccountsForEmail:
    user: User
    created: bool
    accounts: list[AccountKey]


def find_or_create_accounts_for_email(
    *, email: str, name: str = "", account_name: str = "", language: str = ""
) -> AccountsForEmail:
    """The accounts `email` administers, each with that member's SC key; a new account if none.

    Used only by the deployment-internal "my own account" endpoint (DESIGN.md §2,
    S7). A user unknown to this deployment is created without a password: they
    set one through "forgot password" if they ever sign in to the Survey service.
    """
    address = email.strip().lower()
    validate_email(address)
    if len(address) > survey_services.EMAIL_MAX_LENGTH:
        raise ValidationError({"email": [_("Use at most 254 characters.")]})
    if len(account_name.strip()) > 200:
        raise ValidationError({"account_name": [_("Use at most 200 characters.")]})
    # The names go into the headers and subjects of mail (From, invitations).
    problems: dict[str, list[str]] = {}
    for field, value in (("name", name), ("account_name", account_name)):
        try:
            validate_single_line(value)
        except ValidationError as error:
            problems[field] = [str(message) for message in error.messages]
    if problems:
        raise ValidationError(problems)
    with transaction.atomic():
        user = User.objects.filter(email__iexact=address).first()
        if user is None:
            user = User.objects.create_user(
                address, None, full_name=name.strip()[:150], language=language[:8]
            )
        members = list(
            AccountMember.objects.filter(user=user, role=MemberRole.ADMINISTRATOR)
            .select_related("account", "user")
            .order_by("account__created_at", "account_id")
        )
        created = False
        if not members:
            account = survey_services.create_account(
                name=account_name.strip() or user.get_full_name(), owner=user
            )
            members = [
                AccountMember.objects.select_related("account", "user").get(
                    account=account, user=user
                )
            ]
            created = True
        accounts = [
            AccountKey(
                account=member.account,
                key=key_services.get_or_create_key(member=member, by=user),
            )
            for member in members
        ]
    return AccountsForEmail(user=user, created=created, accounts=accounts)
