"""The Survey integration as the CRM keeps it: the connection of an organization to a Survey
account, the invitations it sent, the responses it recorded, the webhook events it received
and the responses it could not place.

Everything shown on CRM pages is stored here, so a Survey outage never slows a CRM page.
"""

from __future__ import annotations

import datetime
import secrets
from typing import ClassVar, TypeVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from kizuna.crm.integration import client
from kizuna.crm.models import Contact, Lead, Organization, OrganizationQuerySet
from kizuna.lib import crypto
from kizuna.work.leases import LeasedWork, WorkStatus

_M = TypeVar("_M", bound=models.Model)
RECIPIENT_REFERENCE_PREFIX = "crm"


def new_intake_token() -> str:
    return secrets.token_urlsafe(32)


def new_reference_key() -> str:
    return secrets.token_hex(8)


class ConnectionState(models.TextChoices):
    ENABLED = "enabled", _("Enabled")
    NEEDS_RECONNECTION = "needs_reconnection", _("Needs reconnection")
    DISABLED = "disabled", _("Disabled")


class ConnectionMethod(models.TextChoices):
    OWN_ACCOUNT = "own_account", _("My own account")
    OTHER_ACCOUNT = "other_account", _("Another user's account")


class ConnectionQuerySet(OrganizationQuerySet["Connection"]):
    def current(self) -> ConnectionQuerySet:
        """The connection in use (enabled or needing reconnection): at most one per organization."""
        return self.exclude(state=ConnectionState.DISABLED)

    def enabled(self) -> ConnectionQuerySet:
        return self.filter(state=ConnectionState.ENABLED)


class Connection(models.Model):
    """An organization's Survey integration: one Survey account reached with one SC key.

    Disabling keeps the row (state disabled, `disabled_at` the cut-off of D6); enabling
    again creates a new one, so a gap is never back-filled.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="survey_connections"
    )
    state = models.CharField(
        _("state"), max_length=32, choices=ConnectionState.choices, default=ConnectionState.ENABLED
    )
    method = models.CharField(_("setup method"), max_length=32, choices=ConnectionMethod.choices)
    survey_account_id = models.PositiveBigIntegerField(_("Survey account id"))
    survey_account_name = models.CharField(_("Survey account"), max_length=200)
    sc_email = models.EmailField(_("SC key email address"))
    sc_key_encrypted = models.TextField(editable=False)
    uses_all_portals = models.BooleanField(_("all surveys of the account"), default=False)
    # The portals chosen, [{"id": 3, "name": "Customers"}]; empty with uses_all_portals.
    portals = models.JSONField(_("portals"), default=list, blank=True)
    webhook_endpoint_id = models.PositiveBigIntegerField(null=True, blank=True, editable=False)
    webhook_secret_encrypted = models.TextField(blank=True, editable=False)
    # The secret part of this connection's intake address (/crm/integration/intake/<token>/).
    intake_token = models.CharField(max_length=64, unique=True, default=new_intake_token)
    # Names this connection in recipient references ("crm:<key>:lead:42"): random, so two
    # CRM deployments sharing a Survey account never read each other's references.
    reference_key = models.CharField(max_length=32, unique=True, default=new_reference_key)
    enabled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("enabled by"),
    )
    enabled_at = models.DateTimeField(_("enabled at"), default=timezone.now)
    needs_reconnection_since = models.DateTimeField(null=True, blank=True)
    reconnected_at = models.DateTimeField(null=True, blank=True)
    disabled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("disabled by"),
    )
    # The cut-off of D6: responses submitted before it are recorded, those after it never.
    disabled_at = models.DateTimeField(_("disabled at"), null=True, blank=True)
    # Reconciliation: every response submitted before this time has been pulled.
    reconciled_until = models.DateTimeField(null=True, blank=True)
    last_reconciled_at = models.DateTimeField(null=True, blank=True)
    final_reconciliation_done_at = models.DateTimeField(null=True, blank=True)
    webhook_endpoint_deleted_at = models.DateTimeField(null=True, blank=True)
    # An administrator ended the final work that had stopped (the Survey service refused
    # the key): what was recorded stays, the webhook endpoint stays at the Survey service.
    finished_without_survey_at = models.DateTimeField(null=True, blank=True)
    last_event_at = models.DateTimeField(_("last event received"), null=True, blank=True)

    objects = ConnectionQuerySet.as_manager()

    class Meta:
        verbose_name = _("Survey connection")
        verbose_name_plural = _("Survey connections")
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["organization"],
                condition=~Q(state="disabled"),
                name="crm_integration_one_current_connection",
            ),
            models.CheckConstraint(
                condition=Q(state="disabled", disabled_at__isnull=False)
                | (~Q(state="disabled") & Q(disabled_at__isnull=True)),
                name="crm_integration_disabled_has_cut_off",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.organization_id} -> {self.survey_account_name} ({self.state})"

    @property
    def is_enabled(self) -> bool:
        return self.state == ConnectionState.ENABLED

    @property
    def is_current(self) -> bool:
        """Enabled or needing reconnection: the integration is set up (pages show it)."""
        return self.state != ConnectionState.DISABLED

    def credentials(self) -> client.Credentials:
        return client.Credentials(
            email=self.sc_email, key=crypto.decrypt_secret(self.sc_key_encrypted)
        )

    def webhook_secret(self) -> str:
        return (
            crypto.decrypt_secret(self.webhook_secret_encrypted)
            if self.webhook_secret_encrypted
            else ""
        )

    def portal_ids(self) -> list[int]:
        return [int(portal["id"]) for portal in self.portals]

    def intake_url(self) -> str:
        """Where the Survey service delivers this connection's webhooks."""
        return settings.KIZUNA_BASE_URL + reverse(
            "crm_integration:intake", args=[self.intake_token]
        )

    def recipient_reference(self, record: Lead | Contact) -> str:
        """The Survey invitation's recipient reference naming `record` for this connection."""
        kind = "lead" if isinstance(record, Lead) else "contact"
        return f"{RECIPIENT_REFERENCE_PREFIX}:{self.reference_key}:{kind}:{record.pk}"

    def stopped_final_work(self) -> Reconciliation | None:
        """The final work after disabling (D6), when it stopped before its end: the Survey
        service refused the key (K2, its owner gone) or stayed unreachable through every
        attempt. None when it ended, is still under way, or was finished without it."""
        if self.is_current or self.finished_without_survey_at or self.webhook_endpoint_deleted_at:
            return None
        return (
            Reconciliation.objects.filter(
                connection=self, kind=ReconciliationKind.FINAL, status=WorkStatus.FAILED
            )
            .order_by("-pk")
            .first()
        )

    def accepts_submission_at(self, submitted_at: object) -> bool:
        """D6: a response submitted at `submitted_at` is recorded unless after the cut-off."""
        return self.disabled_at is None or submitted_at < self.disabled_at  # type: ignore[operator]


def parse_recipient_reference(reference: str) -> tuple[str, str, int] | None:
    """("<reference key>", "lead" | "contact", record id) of a reference made by
    Connection.recipient_reference(), or None for anything else (the public link, others)."""
    parts = reference.split(":")
    if len(parts) != 4 or parts[0] != RECIPIENT_REFERENCE_PREFIX:
        return None
    _prefix, key, kind, pk = parts
    if kind not in ("lead", "contact") or not pk.isdigit() or len(pk) > 18 or not key:
        return None
    return key, kind, int(pk)


def current_connection(organization: Organization | int) -> Connection | None:
    """The organization's integration in use (enabled or needing reconnection), or None.

    Pages show the Survey section and the Insert button while this is not None (D2, D3);
    sending needs `is_enabled`.
    """
    return Connection.objects.of(organization).current().first()


def current_connection_for_page(request: HttpRequest, organization_id: int) -> Connection | None:
    """current_connection(), asked once per request: the parts a record page draws (the
    Survey section, the "Send survey" button) each need it."""
    asked: dict[int, Connection | None] = request.__dict__.setdefault(
        "_kizuna_current_connections", {}
    )
    if organization_id not in asked:
        asked[organization_id] = current_connection(organization_id)
    return asked[organization_id]


class SurveyInvitation(models.Model):
    """A survey link the CRM had made for one lead or contact (E2, E3), with its progress.

    Like crm.Activity it names the lead and/or the contact, so the history follows a
    lead converted into a contact.
    """

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    lead = models.ForeignKey(
        Lead, on_delete=models.SET_NULL, null=True, blank=True, related_name="survey_invitations"
    )
    contact = models.ForeignKey(
        Contact,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="survey_invitations",
    )
    survey_id = models.PositiveBigIntegerField(_("survey id"))
    survey_title = models.CharField(_("survey"), max_length=300)
    recipient_reference = models.CharField(max_length=200)
    email = models.EmailField(_("sent to"), blank=True)
    # The Survey service's invitation token and the personal link made from it (/s/i/<token>/).
    survey_token = models.CharField(max_length=100, blank=True)
    link = models.CharField(_("survey link"), max_length=1000, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    opened_at = models.DateTimeField(_("opened at"), null=True, blank=True)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        verbose_name = _("survey invitation")
        verbose_name_plural = _("survey invitations")
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["connection", "survey_id", "recipient_reference"],
                name="crm_integration_one_invitation_per_recipient",
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["lead", "-created_at"], name="crm_integ_invitation_lead"),
            models.Index(fields=["contact", "-created_at"], name="crm_integ_invitation_contact"),
        ]

    def __str__(self) -> str:
        return f"{self.survey_title} -> {self.recipient_reference}"


class SurveyResponse(models.Model):
    """A response recorded on a lead or contact (E4), once per response id and connection.

    `answers` are kept display-ready: [{"question_id", "kind", "text", "position", "value",
    "display"}] as the Survey service sent them. A response deleted at the Survey service
    keeps its row without answers (`deleted_at`), so a late redelivery never brings it back.
    """

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    lead = models.ForeignKey(
        Lead, on_delete=models.SET_NULL, null=True, blank=True, related_name="survey_responses"
    )
    contact = models.ForeignKey(
        Contact,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="survey_responses",
    )
    invitation = models.ForeignKey(
        SurveyInvitation,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="responses",
    )
    response_id = models.CharField(max_length=64)
    recipient_reference = models.CharField(max_length=200, blank=True)
    survey_id = models.PositiveBigIntegerField(_("survey id"))
    survey_title = models.CharField(_("survey"), max_length=300)
    portal_name = models.CharField(_("portal"), max_length=200, blank=True)
    language = models.CharField(max_length=16, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(_("submitted at"))
    answers = models.JSONField(_("answers"), default=list, blank=True)
    recorded_at = models.DateTimeField(_("recorded at"), default=timezone.now)
    deleted_at = models.DateTimeField(_("deleted at the Survey service"), null=True, blank=True)

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        verbose_name = _("survey response")
        verbose_name_plural = _("survey responses")
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["connection", "response_id"], name="crm_integration_response_once"
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["lead", "-submitted_at"], name="crm_integ_response_lead"),
            models.Index(fields=["contact", "-submitted_at"], name="crm_integ_response_contact"),
        ]

    def __str__(self) -> str:
        return f"{self.survey_title} {self.response_id}"


class IntakeOutcome(models.TextChoices):
    RECORDED = "recorded", _("Recorded")
    DUPLICATE = "duplicate", _("Already received")
    AFTER_CUT_OFF = "after_cut_off", _("Submitted after disabling: not recorded")
    NO_REFERENCE = "no_reference", _("Not from a CRM link: not recorded")
    OTHER_CONNECTION = "other_connection", _("For another CRM connection: not recorded")
    UNMATCHED = "unmatched", _("Record not found: kept as unmatched")
    BAD_SIGNATURE = "bad_signature", _("Refused: bad signature")
    STALE_TIMESTAMP = "stale_timestamp", _("Refused: timestamp too old or in the future")
    INVALID = "invalid", _("Refused: not a valid event")


REFUSED_OUTCOMES = (
    IntakeOutcome.BAD_SIGNATURE,
    IntakeOutcome.STALE_TIMESTAMP,
    IntakeOutcome.INVALID,
)


class IntakeEvent(models.Model):
    """A webhook delivery that reached this connection's intake URL, and what became of it.

    Accepted events are unique per (connection, event id): a redelivery is acknowledged
    and ignored. Refused ones (bad signature, stale timestamp) are kept for the
    administrator and never block the genuine event of the same id.
    """

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    event_id = models.CharField(max_length=100, blank=True)
    event_type = models.CharField(max_length=64, blank=True)
    outcome = models.CharField(max_length=32, choices=IntakeOutcome.choices)
    detail = models.CharField(max_length=500, blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["connection", "event_id"],
                condition=~Q(outcome__in=["bad_signature", "stale_timestamp", "invalid"]),
                name="crm_integration_event_once",
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["connection", "-received_at"], name="crm_integ_event_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} {self.outcome}"


class UnmatchedResponse(models.Model):
    """A response for a lead or contact that no longer exists in the organization, kept for
    the administrators instead of being dropped (E4)."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    response_id = models.CharField(max_length=64)
    recipient_reference = models.CharField(max_length=200)
    survey_id = models.PositiveBigIntegerField(_("survey id"))
    survey_title = models.CharField(_("survey"), max_length=300)
    submitted_at = models.DateTimeField(_("submitted at"))
    answers = models.JSONField(_("answers"), default=list, blank=True)
    received_at = models.DateTimeField(_("received at"), default=timezone.now)
    dismissed_at = models.DateTimeField(null=True, blank=True)
    dismissed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        verbose_name = _("unmatched response")
        verbose_name_plural = _("unmatched responses")
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["connection", "response_id"], name="crm_integration_unmatched_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.survey_title} {self.response_id} ({self.recipient_reference})"


class ReconciliationKind(models.TextChoices):
    PERIODIC = "periodic", _("Periodic")
    REQUESTED = "requested", _("Run by an administrator")
    FINAL = "final", _("Final, after disabling")


class Reconciliation(LeasedWork):
    """A pull of the responses delivery may have missed (GET /responses?since=), as leased work.

    PERIODIC: one row per enabled connection that schedules itself again after each run.
    REQUESTED: "run now" of an administrator, once. FINAL: after the integration was
    disabled, the last pull up to the cut-off and then the deletion of the webhook
    endpoint at the Survey service, retried until both are done.
    """

    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, related_name="reconciliations"
    )
    kind = models.CharField(_("kind"), max_length=16, choices=ReconciliationKind.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    last_run_at = models.DateTimeField(_("last run at"), null=True, blank=True)
    # How many responses the last run recorded that delivery had not brought.
    last_recorded = models.PositiveIntegerField(default=0)

    every: ClassVar[datetime.timedelta] = datetime.timedelta(minutes=15)
    # The final pull waits this long after the cut-off, for submissions still being stored.
    settle_delay: ClassVar[datetime.timedelta] = datetime.timedelta(minutes=2)
    # Retried for weeks (capped at 6 hours apart) while the Survey service is unreachable; a
    # key it refuses stops a FINAL run at once (it never comes back by waiting).
    max_attempts = models.PositiveIntegerField(_("maximum attempts"), default=200)
    lease_seconds: ClassVar[int] = 600

    class Meta:
        verbose_name = _("reconciliation")
        verbose_name_plural = _("reconciliations")
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["connection"],
                condition=Q(kind="periodic"),
                name="crm_integration_one_periodic_reconciliation",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} reconciliation of connection {self.connection_id} ({self.status})"
