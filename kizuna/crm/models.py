from __future__ import annotations

from typing import ClassVar, TypeVar

from django.conf import settings
from django.db import models
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from kizuna.lib.querysets import TenantQuerySet
from kizuna.lib.text import validate_multi_line, validate_single_line

# A lead or a contact, kept as the one it is.
RecordT = TypeVar("RecordT", "Lead", "Contact")
_M = TypeVar("_M", bound=models.Model)


class Organization(models.Model):
    """A tenant of the CRM: a team with its own members, leads and contacts."""

    name = models.CharField(_("name"), max_length=200)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("organization")
        verbose_name_plural = _("organizations")

    def __str__(self) -> str:
        return self.name


class OrganizationQuerySet(TenantQuerySet[_M]):
    """Rows of one organization: `Lead.objects.of(organization)`."""

    tenant_lookup = "organization"


class Role(models.TextChoices):
    ADMINISTRATOR = "admin", _("Administrator")
    STANDARD = "standard", _("Standard")


class Membership(models.Model):
    """A user's place in one organization, with a role."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="crm_memberships"
    )
    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.STANDARD)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("joined at"), default=timezone.now)

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        verbose_name = _("member")
        verbose_name_plural = _("members")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["organization", "user"], name="crm_one_membership")
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.organization}"

    @property
    def is_administrator(self) -> bool:
        return self.is_active and self.role == Role.ADMINISTRATOR

    # The delete rule, for the pages, the bulk action and the API alike: administrators
    # delete any record of their organization, a standard member only the records they own.
    def may_delete(self, record: Lead | Contact) -> bool:
        if not self.is_active or record.organization_id != self.organization_id:
            return False
        return self.is_administrator or record.owner_id == self.user_id

    def deletable(self, records: QuerySet[RecordT]) -> QuerySet[RecordT]:
        """The records among `records` that may_delete() allows, as one query."""
        records = records.filter(organization_id=self.organization_id)
        if not self.is_active:
            return records.none()
        if self.is_administrator:
            return records
        return records.filter(owner_id=self.user_id)


class MemberInvitation(models.Model):
    """An administrator's invitation for an email address to join the organization."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="member_invitations"
    )
    email = models.EmailField(_("email address"))
    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.STANDARD)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(_("invited at"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires at"))
    accepted_at = models.DateTimeField(_("accepted at"), null=True, blank=True)

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        verbose_name = _("member invitation")
        verbose_name_plural = _("member invitations")

    def __str__(self) -> str:
        return self.email


class LeadStatus(models.TextChoices):
    NEW = "new", _("New")
    CONTACTED = "contacted", _("Contacted")
    QUALIFIED = "qualified", _("Qualified")
    UNQUALIFIED = "unqualified", _("Unqualified")
    CONVERTED = "converted", _("Converted")


class LeadSource(models.TextChoices):
    NONE = "", _("(none)")
    WEB = "web", _("Web site")
    REFERRAL = "referral", _("Referral")
    EVENT = "event", _("Event")
    ADVERTISEMENT = "advertisement", _("Advertisement")
    COLD_CALL = "cold_call", _("Cold call")
    PARTNER = "partner", _("Partner")
    OTHER = "other", _("Other")


# The fields of a lead or contact that members fill in, in the form's order; a lead
# hands them to the contact it becomes.
PERSON_FIELDS = (
    "family_name",
    "given_name",
    "company",
    "title",
    "email",
    "phone",
    "lead_source",
    "owner",
    "postal_code",
    "region",
    "city",
    "street",
    "country",
    "description",
    "email_opt_out",
)


class Person(models.Model):
    """Abstract: the fields a lead and a contact share."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    family_name = models.CharField(
        _("family name"), max_length=100, validators=[validate_single_line]
    )
    given_name = models.CharField(
        _("given name"), max_length=100, blank=True, validators=[validate_single_line]
    )
    company = models.CharField(
        _("company"), max_length=200, blank=True, validators=[validate_single_line]
    )
    title = models.CharField(
        _("title"), max_length=100, blank=True, validators=[validate_single_line]
    )
    email = models.EmailField(_("email"), blank=True)
    phone = models.CharField(
        _("phone"), max_length=40, blank=True, validators=[validate_single_line]
    )
    lead_source = models.CharField(
        _("lead source"), max_length=20, choices=LeadSource.choices, blank=True
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("owner"),
    )
    postal_code = models.CharField(
        _("postal code"), max_length=20, blank=True, validators=[validate_single_line]
    )
    region = models.CharField(
        _("prefecture / state"), max_length=100, blank=True, validators=[validate_single_line]
    )
    city = models.CharField(
        _("city"), max_length=100, blank=True, validators=[validate_single_line]
    )
    street = models.CharField(
        _("street"), max_length=200, blank=True, validators=[validate_single_line]
    )
    country = models.CharField(
        _("country"), max_length=100, blank=True, validators=[validate_single_line]
    )
    description = models.TextField(_("description"), blank=True, validators=[validate_multi_line])
    email_opt_out = models.BooleanField(_("email opt-out"), default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    modified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("modified by"),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    modified_at = models.DateTimeField(_("modified at"), default=timezone.now)

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.display_name()

    def display_name(self, language: str | None = None) -> str:
        """Family name first in Japanese, given name first otherwise."""
        from django.utils.translation import get_language

        language = language or get_language() or "en"
        parts = (
            [self.family_name, self.given_name]
            if language.startswith("ja")
            else [self.given_name, self.family_name]
        )
        return " ".join(part for part in parts if part)


class Lead(Person):
    """A prospective customer not yet qualified into a contact."""

    status = models.CharField(
        _("lead status"), max_length=20, choices=LeadStatus.choices, default=LeadStatus.NEW
    )
    converted_contact = models.ForeignKey(
        "Contact",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="source_leads",
        verbose_name=_("converted to"),
    )
    converted_at = models.DateTimeField(_("converted at"), null=True, blank=True)

    class Meta:
        verbose_name = _("lead")
        verbose_name_plural = _("leads")
        indexes: ClassVar = [
            models.Index(fields=["organization", "-created_at", "-id"], name="crm_lead_recent"),
            models.Index(
                fields=["organization", "family_name", "given_name", "id"], name="crm_lead_name"
            ),
            models.Index(fields=["organization", "email"], name="crm_lead_email"),
            # Filters keep the default "most recent first" order on an index.
            models.Index(
                fields=["organization", "status", "-created_at", "-id"], name="crm_lead_status"
            ),
            models.Index(
                fields=["organization", "owner", "-created_at", "-id"], name="crm_lead_owner"
            ),
            models.Index(
                fields=["organization", "lead_source", "-created_at", "-id"],
                name="crm_lead_source",
            ),
            models.Index(fields=["organization", "company", "id"], name="crm_lead_company"),
        ]


class Contact(Person):
    """A person the team does business with."""

    department = models.CharField(
        _("department"), max_length=100, blank=True, validators=[validate_single_line]
    )

    class Meta:
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        indexes: ClassVar = [
            models.Index(fields=["organization", "-created_at", "-id"], name="crm_contact_recent"),
            models.Index(
                fields=["organization", "family_name", "given_name", "id"], name="crm_contact_name"
            ),
            models.Index(fields=["organization", "email"], name="crm_contact_email"),
            models.Index(
                fields=["organization", "owner", "-created_at", "-id"], name="crm_contact_owner"
            ),
            models.Index(
                fields=["organization", "lead_source", "-created_at", "-id"],
                name="crm_contact_source",
            ),
            models.Index(fields=["organization", "company", "id"], name="crm_contact_company"),
        ]


def model_for(module: str) -> type[Lead] | type[Contact]:
    """The model of a module of the pages and the API: "leads" or "contacts"."""
    return Lead if module == "leads" else Contact


class ActivityKind(models.TextChoices):
    CREATED = "created", _("Created")
    EDITED = "edited", _("Edited")
    CONVERTED = "converted", _("Converted")
    EMAIL_QUEUED = "email_queued", _("Email queued")
    EMAIL_SENT = "email_sent", _("Email sent")
    EMAIL_FAILED = "email_failed", _("Email failed")
    EMAIL_SKIPPED = "email_skipped", _("Email skipped")
    UNSUBSCRIBED = "unsubscribed", _("Unsubscribed")
    IMPORTED = "imported", _("Imported")
    SURVEY_SENT = "survey_sent", _("Survey sent")
    SURVEY_RESPONDED = "survey_responded", _("Survey responded")
    SURVEY_OPENED = "survey_opened", _("Survey opened")
    SURVEY_RESPONSE_DELETED = "survey_response_deleted", _("Survey response deleted")


class Activity(models.Model):
    """One event on a lead's or contact's timeline.

    When a lead is converted its activities get the contact too, so the history
    follows the person.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    # db_index=False: the indexes (lead, -created_at) and (contact, -created_at) below
    # serve every lookup by lead or contact, the SET NULL of a deleted record's included.
    lead = models.ForeignKey(
        Lead,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="activities",
        db_index=False,
    )
    contact = models.ForeignKey(
        Contact,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="activities",
        db_index=False,
    )
    kind = models.CharField(_("kind"), max_length=32, choices=ActivityKind.choices)
    summary = models.CharField(_("summary"), max_length=500, blank=True)
    data = models.JSONField(_("data"), default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("at"), default=timezone.now)

    class Meta:
        verbose_name = _("activity")
        verbose_name_plural = _("activities")
        indexes: ClassVar = [
            models.Index(fields=["lead", "-created_at"], name="crm_activity_lead"),
            models.Index(fields=["contact", "-created_at"], name="crm_activity_contact"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.summary}"
