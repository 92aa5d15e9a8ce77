"""Webhook endpoints and signed, retried deliveries of Survey events."""

from __future__ import annotations

import base64
import datetime
import secrets
from typing import ClassVar
from urllib.parse import urlsplit

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from kizuna.lib import crypto
from kizuna.survey.models import AccountQuerySet, SurveyAccount
from kizuna.work.leases import LeasedWork


class WebhookEvent(models.TextChoices):
    INVITATION_OPENED = "invitation.opened", _("An invitation link was opened")
    RESPONSE_COMPLETED = "response.completed", _("A response was submitted")
    RESPONSE_DELETED = "response.deleted", _("A response was deleted")


def new_signing_secret() -> str:
    """A Standard Webhooks secret: whsec_ and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def new_message_id() -> str:
    return "msg_" + secrets.token_urlsafe(18)


class WebhookEndpoint(models.Model):
    """A URL of another service (usually a CRM) that receives the account's events, signed."""

    account = models.ForeignKey(
        SurveyAccount, on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.URLField(_("URL"), max_length=1000)
    events = models.JSONField(_("events"), default=list)
    encrypted_secret = models.TextField()
    description = models.CharField(_("description"), max_length=200, blank=True)
    is_enabled = models.BooleanField(_("enabled"), default=True)
    disabled_reason = models.CharField(_("why it is disabled"), max_length=300, blank=True)
    disabled_at = models.DateTimeField(_("disabled at"), null=True, blank=True)
    # Set by the first failed attempt after a success, cleared by the next success: the
    # warning in Settings, and the worker's cue to probe the endpoint while it is down.
    failing_since = models.DateTimeField(_("failing since"), null=True, blank=True)
    last_failed_at = models.DateTimeField(_("last failed attempt at"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    objects = AccountQuerySet.as_manager()

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")
        ordering: ClassVar = ["created_at", "id"]

    def __str__(self) -> str:
        return self.url

    def signing_secret(self) -> str:
        return crypto.decrypt_secret(self.encrypted_secret)

    def is_subscribed_to(self, event_type: str) -> bool:
        return event_type in self.events

    @property
    def origin(self) -> str:
        """scheme://host[:port]: what logs name (the path may carry a token)."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


class Delivery(LeasedWork):
    """One event for one endpoint: sent until it is accepted, or dead-lettered (failed).

    `message_id` is the webhook-id header: the same on every attempt and replay,
    so the receiver can drop duplicates. Back-off: 30 s doubling up to 6 h with
    +-20 % jitter; 26 attempts span more than 3 days even with the shortest jitter.
    """

    retry_base_seconds: ClassVar[float] = 30.0
    retry_factor: ClassVar[float] = 2.0
    retry_max_seconds: ClassVar[float] = 6 * 3600.0
    retry_jitter_ratio: ClassVar[float] = 0.2
    lease_seconds: ClassVar[int] = 120

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_type = models.CharField(_("event"), max_length=40, choices=WebhookEvent.choices)
    message_id = models.CharField(max_length=64, unique=True, default=new_message_id)
    payload = models.JSONField()
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    max_attempts = models.PositiveIntegerField(_("maximum attempts"), default=26)

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        indexes: ClassVar = [
            models.Index(
                fields=["status", "next_attempt_at", "id"], name="survey_delivery_due_order"
            ),
            models.Index(fields=["endpoint", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.message_id}"


class DeliveryAttempt(models.Model):
    """One try to send a delivery: what the endpoint answered, or why there was no answer."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempts_made")
    attempted_at = models.DateTimeField(_("attempted at"), default=timezone.now)
    status_code = models.PositiveIntegerField(_("status code"), null=True, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), default=0)
    error = models.TextField(_("error"), blank=True)
    response_body = models.TextField(_("response"), blank=True)

    class Meta:
        verbose_name = _("delivery attempt")
        verbose_name_plural = _("delivery attempts")
        ordering: ClassVar = ["-attempted_at", "-id"]

    def __str__(self) -> str:
        return f"{self.delivery_id} at {self.attempted_at:%Y-%m-%d %H:%M:%S}"


class DeletedResponse(models.Model):
    """What is left of a deleted response for a while: which one, and when it was deleted.

    GET /responses/deleted lists these, so a subscriber that missed response.deleted (its
    deliveries dead-lettered after days of an outage) still learns of the deletion. Kept for
    RETENTION, then pruned; nothing of the answers is kept.
    """

    RETENTION: ClassVar[datetime.timedelta] = datetime.timedelta(days=30)

    response_id = models.UUIDField(primary_key=True)
    account = models.ForeignKey(SurveyAccount, on_delete=models.CASCADE, related_name="+")
    # No foreign key: the survey may be deleted once its last response is.
    survey_id = models.PositiveBigIntegerField()
    survey_title = models.CharField(max_length=300, blank=True)
    recipient_reference = models.CharField(max_length=200, blank=True)
    submitted_at = models.DateTimeField()
    deleted_at = models.DateTimeField(default=timezone.now)

    objects = AccountQuerySet.as_manager()

    class Meta:
        verbose_name = _("deleted response")
        verbose_name_plural = _("deleted responses")
        indexes: ClassVar = [
            models.Index(fields=["account", "deleted_at"], name="survey_deleted_response_time"),
        ]

    def __str__(self) -> str:
        return f"{self.response_id} (deleted {self.deleted_at:%Y-%m-%d})"
