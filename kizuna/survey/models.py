from __future__ import annotations

import datetime
import hashlib
import secrets
import uuid
from typing import ClassVar, TypeVar

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from kizuna.lib.querysets import TenantQuerySet
from kizuna.work.leases import LeasedWork

_M = TypeVar("_M", bound=models.Model)


class AccountQuerySet(TenantQuerySet[_M]):
    """Rows of one Survey account: `Portal.objects.of(account)`."""

    tenant_lookup = "account"


class SurveyQuerySet(TenantQuerySet["Survey"]):
    """Surveys of one account, through their portal: `Survey.objects.of(account)`."""

    tenant_lookup = "portal__account"


class OfSurveyQuerySet(TenantQuerySet[_M]):
    """Rows of one account through their survey: `Response.objects.of(account)`."""

    tenant_lookup = "survey__portal__account"


def new_public_id() -> str:
    return secrets.token_urlsafe(12)  # 96 bits: a link that can be shared, not guessed


def new_invitation_token() -> str:
    return secrets.token_urlsafe(24)  # 192 bits


class SurveyAccount(models.Model):
    """A Survey tenant: members, portals and everything in them."""

    name = models.CharField(_("name"), max_length=200)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("survey account")
        verbose_name_plural = _("survey accounts")

    def __str__(self) -> str:
        return self.name


class MemberRole(models.TextChoices):
    ADMINISTRATOR = "admin", pgettext_lazy("survey role", "Administrator")
    MEMBER = "member", pgettext_lazy("survey role", "Member")


class AccountMember(models.Model):
    """A user's membership of a Survey account, with a role."""

    account = models.ForeignKey(SurveyAccount, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="survey_memberships"
    )
    role = models.CharField(
        _("role"), max_length=16, choices=MemberRole.choices, default=MemberRole.MEMBER
    )
    created_at = models.DateTimeField(_("joined at"), default=timezone.now)

    objects = AccountQuerySet.as_manager()

    class Meta:
        verbose_name = _("account member")
        verbose_name_plural = _("account members")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["account", "user"], name="survey_one_membership")
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.account}"

    @property
    def is_administrator(self) -> bool:
        return self.role == MemberRole.ADMINISTRATOR


class MemberInvitation(LeasedWork):
    """An administrator's invitation for an email address to join a Survey account.

    It is pending until its person accepts (then it becomes an AccountMember) or
    declines it, an administrator withdraws it, or it expires; each of these deletes
    it, and the audit log keeps its story. Nobody becomes a member without accepting.
    Its LeasedWork columns schedule one job, due at `expires_at`: the worker deletes
    the invitation then and records that it expired.
    """

    account = models.ForeignKey(
        SurveyAccount, on_delete=models.CASCADE, related_name="member_invitations"
    )
    email = models.EmailField(_("email address"))  # lower-case
    role = models.CharField(
        _("role"), max_length=16, choices=MemberRole.choices, default=MemberRole.MEMBER
    )
    token_hash = models.CharField(max_length=64, unique=True)  # the link's token is never stored
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(_("invited at"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires at"))

    objects = AccountQuerySet.as_manager()

    class Meta:
        verbose_name = _("member invitation")
        verbose_name_plural = _("member invitations")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["account", "email"], name="survey_one_invitation")
        ]
        indexes: ClassVar = [models.Index(fields=["email"], name="survey_invitation_email")]

    def __str__(self) -> str:
        return self.email

    @staticmethod
    def hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def is_expired(self, now: datetime.datetime | None = None) -> bool:
        return self.expires_at <= (now or timezone.now())


class Portal(models.Model):
    """A workspace inside an account; surveys belong to a portal."""

    account = models.ForeignKey(SurveyAccount, on_delete=models.CASCADE, related_name="portals")
    name = models.CharField(_("name"), max_length=200)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    objects = AccountQuerySet.as_manager()

    class Meta:
        verbose_name = _("portal")
        verbose_name_plural = _("portals")
        ordering: ClassVar = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class Survey(models.Model):
    """A questionnaire with its public link, state and settings."""

    portal = models.ForeignKey(Portal, on_delete=models.PROTECT, related_name="surveys")
    public_id = models.CharField(max_length=32, unique=True, default=new_public_id)
    title = models.CharField(pgettext_lazy("survey", "title"), max_length=300)
    description = models.TextField(pgettext_lazy("survey", "description"), blank=True)
    language = models.CharField(
        _("language"), max_length=8, choices=settings.LANGUAGES, default="ja"
    )
    thank_you_message = models.TextField(_("thank-you message"), blank=True)
    is_open = models.BooleanField(_("open for responses"), default=True)
    closes_at = models.DateTimeField(_("closes at"), null=True, blank=True)
    is_anonymous = models.BooleanField(
        _("anonymous"),
        default=False,
        help_text=_("Responses keep no link to the person who was invited."),
    )
    # Ceilings of the shared link (issue 12.2): a crowd is welcome, a flood stops here.
    max_responses = models.PositiveIntegerField(
        _("maximum responses"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_(
            "Optional. Once the survey has this many responses, its shared link accepts no "
            "more; invitation links still work."
        ),
    )
    max_responses_per_hour = models.PositiveIntegerField(
        _("maximum responses per hour"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_(
            "Optional. Once this many responses came in within an hour, the shared link asks "
            "the next respondents to send their answers again a little later, keeping them "
            "on screen; invitation links still work."
        ),
    )
    one_response_per_browser = models.BooleanField(
        _("one response per browser"),
        default=False,
        help_text=_(
            "The shared link accepts one response from each browser (it remembers the "
            "response in a cookie). People who share a computer cannot both answer."
        ),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    modified_at = models.DateTimeField(_("modified at"), default=timezone.now)

    objects = SurveyQuerySet.as_manager()

    class Meta:
        verbose_name = _("survey")
        verbose_name_plural = _("surveys")

    def __str__(self) -> str:
        return self.title

    def accepts_responses(self) -> bool:
        return self.is_open and (self.closes_at is None or self.closes_at > timezone.now())


class Section(models.Model):
    """A page of a survey: questions are shown one section at a time."""

    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="sections")
    title = models.CharField(pgettext_lazy("survey", "title"), max_length=300, blank=True)
    description = models.TextField(pgettext_lazy("survey", "description"), blank=True)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering: ClassVar = ["position", "id"]

    def __str__(self) -> str:
        return self.title or f"#{self.position + 1}"


class QuestionKind(models.TextChoices):
    SINGLE_CHOICE = "single_choice", _("Single choice")
    MULTIPLE_CHOICE = "multiple_choice", _("Multiple choice")
    DROPDOWN = "dropdown", _("Dropdown")
    SHORT_TEXT = "short_text", _("Short text")
    LONG_TEXT = "long_text", _("Long text")
    NUMBER = "number", pgettext_lazy("question type", "Number")
    EMAIL = "email", pgettext_lazy("question type", "Email")
    DATE = "date", pgettext_lazy("question type", "Date")
    RATING = "rating", _("Rating (1–5)")
    NPS = "nps", _("Net Promoter Score (0–10)")
    MATRIX = "matrix", _("Matrix")


class Question(models.Model):
    """One question of a survey.

    `options` holds the kind's settings, with stable keys so that answers stay
    readable after edits: {"choices": [{"key", "label", "archived"}], "min_picks",
    "max_picks", "min", "max", "rows": [{"key", "label", "archived"}],
    "columns": [{"key", "label"}]}. A question with answers is archived, never
    deleted, and its kind never changes.
    """

    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="questions")
    section = models.ForeignKey(
        Section, on_delete=models.SET_NULL, null=True, blank=True, related_name="questions"
    )
    position = models.PositiveIntegerField(default=0)
    kind = models.CharField(_("type"), max_length=20, choices=QuestionKind.choices)
    text = models.TextField(_("question"))
    help_text = models.TextField(_("help text"), blank=True)
    is_required = models.BooleanField(_("required"), default=False)
    options = models.JSONField(default=dict, blank=True)
    is_archived = models.BooleanField(_("archived"), default=False)

    class Meta:
        verbose_name = _("question")
        verbose_name_plural = _("questions")
        ordering: ClassVar = ["position", "id"]

    def __str__(self) -> str:
        return self.text


class Invitation(models.Model):
    """One person's own link to a survey (/s/i/<token>/): one completed response."""

    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="invitations")
    token = models.CharField(max_length=64, unique=True, default=new_invitation_token)
    recipient_reference = models.CharField(_("recipient reference"), max_length=200, blank=True)
    email = models.EmailField(_("email"), blank=True)
    name = models.CharField(_("name"), max_length=200, blank=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    opened_at = models.DateTimeField(_("opened at"), null=True, blank=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)

    objects = OfSurveyQuerySet.as_manager()

    class Meta:
        verbose_name = _("invitation")
        verbose_name_plural = _("invitations")
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["survey", "recipient_reference"],
                condition=~models.Q(recipient_reference=""),
                name="survey_invitation_once_per_recipient",
            )
        ]
        indexes: ClassVar = [models.Index(fields=["recipient_reference"])]

    def __str__(self) -> str:
        return self.email or self.recipient_reference or self.token[:8]


class Response(models.Model):
    """One completed submission of a survey."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="responses")
    # Unique: an invitation accepts one completed response, even under concurrent submits.
    invitation = models.OneToOneField(
        Invitation, on_delete=models.SET_NULL, null=True, blank=True, related_name="response"
    )
    recipient_reference = models.CharField(max_length=200, blank=True)
    language = models.CharField(max_length=8, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(_("submitted at"), default=timezone.now, db_index=True)
    # The nonce of the signed start of the form sent through the shared link: one response per
    # form drawn, so a start kept from long ago cannot skip the minimum time again and again.
    start_nonce = models.CharField(max_length=32, null=True, blank=True, unique=True)

    objects = OfSurveyQuerySet.as_manager()

    class Meta:
        verbose_name = _("response")
        verbose_name_plural = _("responses")
        indexes: ClassVar = [models.Index(fields=["survey", "-submitted_at"])]

    def __str__(self) -> str:
        return str(self.id)


class Answer(models.Model):
    """One question's answer within a response; `value` by kind (choice keys, text, number)."""

    response = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="answers")
    question = models.ForeignKey(Question, on_delete=models.PROTECT, related_name="answers")
    value = models.JSONField()

    class Meta:
        verbose_name = _("answer")
        verbose_name_plural = _("answers")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["response", "question"], name="survey_one_answer")
        ]

    def __str__(self) -> str:
        return f"{self.question_id}: {self.value}"


class HeldReason(models.TextChoices):
    HONEYPOT = "honeypot", _("a field people cannot see was filled in")
    TOO_FAST = "too_fast", _("sent faster than a person answers")
    REPEAT = "repeat", _("a second response from one browser")


class HeldSubmissionCount(models.Model):
    """How many submissions through a survey's shared link were held on one day, and why.

    A held submission is not stored: the respondent is told and may send it again. One row
    per survey, day and reason, so that a flood of them adds no rows.
    """

    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="held_counts")
    day = models.DateField()
    reason = models.CharField(max_length=16, choices=HeldReason.choices)
    count = models.PositiveIntegerField(default=0)

    objects = OfSurveyQuerySet.as_manager()

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["survey", "day", "reason"], name="survey_one_held_count_a_day"
            )
        ]

    def __str__(self) -> str:
        return f"{self.survey_id} {self.day} {self.reason}: {self.count}"
