"""The audit trail of a Survey account: one row per change an administrator may ask about."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from kizuna.lib import audit
from kizuna.survey.models import AccountQuerySet, MemberRole, SurveyAccount


class AuditAction(models.TextChoices):
    MEMBER_INVITED = "member.invited", _("Members added")  # before invitations were accepted
    MEMBER_INVITATION_SENT = "member.invitation_sent", _("Invitation sent")
    MEMBER_INVITATION_RESENT = "member.invitation_resent", _("Invitation sent again")
    MEMBER_INVITATION_ACCEPTED = "member.invitation_accepted", _("Invitation accepted")
    MEMBER_INVITATION_DECLINED = "member.invitation_declined", _("Invitation declined")
    MEMBER_INVITATION_EXPIRED = "member.invitation_expired", _("Invitation expired")
    MEMBER_INVITATION_WITHDRAWN = "member.invitation_withdrawn", _("Invitation withdrawn")
    MEMBER_ROLE_CHANGED = "member.role_changed", _("Member's role changed")
    MEMBER_REMOVED = "member.removed", _("Member removed")
    PORTAL_CREATED = "portal.created", _("Portal created")
    PORTAL_RENAMED = "portal.renamed", _("Portal renamed")
    PORTAL_DELETED = "portal.deleted", _("Portal deleted")
    SURVEY_DELETED = "survey.deleted", _("Survey deleted")
    SC_KEY_REGENERATED = "sc_key.regenerated", _("SC key regenerated")
    WEBHOOK_ENDPOINT_CREATED = "webhook_endpoint.created", _("Webhook endpoint created")
    WEBHOOK_ENDPOINT_REGISTERED = (
        "webhook_endpoint.registered",
        _("Webhook endpoint registered again"),
    )
    WEBHOOK_ENDPOINT_DELETED = "webhook_endpoint.deleted", _("Webhook endpoint deleted")
    WEBHOOK_ENDPOINT_ENABLED = "webhook_endpoint.enabled", _("Webhook endpoint enabled")
    WEBHOOK_ENDPOINT_DISABLED = "webhook_endpoint.disabled", _("Webhook endpoint disabled")
    WEBHOOK_DELIVERY_REPLAYED = "webhook_delivery.replayed", _("Webhook delivery replayed")
    WEBHOOK_FAILED_RETRIED = "webhook_endpoint.failed_retried", _("Failed deliveries retried")
    WEBHOOK_DELIVERIES_RESENT = "webhook_endpoint.resent", _("Deliveries sent again")


# Each entry read as a sentence; %(actor)s and %(target)s are names, the rest comes from `data`.
SENTENCES = {
    AuditAction.MEMBER_INVITED: _("%(actor)s added %(emails)s as %(role)s."),
    AuditAction.MEMBER_INVITATION_SENT: _("%(actor)s invited %(target)s to join as %(role)s."),
    AuditAction.MEMBER_INVITATION_RESENT: _("%(actor)s sent the invitation to %(target)s again."),
    AuditAction.MEMBER_INVITATION_ACCEPTED: _(
        "%(target)s accepted the invitation and joined as %(role)s."
    ),
    AuditAction.MEMBER_INVITATION_DECLINED: _("%(target)s declined the invitation."),
    AuditAction.MEMBER_INVITATION_EXPIRED: _(
        "The invitation to %(target)s expired without an answer."
    ),
    AuditAction.MEMBER_INVITATION_WITHDRAWN: _("%(actor)s withdrew the invitation to %(target)s."),
    AuditAction.MEMBER_ROLE_CHANGED: _("%(actor)s changed %(target)s's role to %(role)s."),
    AuditAction.MEMBER_REMOVED: _("%(actor)s removed %(target)s from the account."),
    AuditAction.PORTAL_CREATED: _("%(actor)s created the portal “%(target)s”."),
    AuditAction.PORTAL_RENAMED: _("%(actor)s renamed the portal “%(old)s” to “%(new)s”."),
    AuditAction.PORTAL_DELETED: _("%(actor)s deleted the portal “%(target)s”."),
    AuditAction.SURVEY_DELETED: _("%(actor)s deleted the survey “%(target)s”."),
    AuditAction.SC_KEY_REGENERATED: _(
        "%(actor)s regenerated the SC key of %(target)s: the old key no longer works."
    ),
    AuditAction.WEBHOOK_ENDPOINT_CREATED: _("%(actor)s added the webhook endpoint %(target)s."),
    AuditAction.WEBHOOK_ENDPOINT_REGISTERED: _(
        "%(actor)s registered the webhook endpoint %(target)s again."
    ),
    AuditAction.WEBHOOK_ENDPOINT_DELETED: _("%(actor)s deleted the webhook endpoint %(target)s."),
    AuditAction.WEBHOOK_ENDPOINT_ENABLED: _("%(actor)s enabled the webhook endpoint %(target)s."),
    AuditAction.WEBHOOK_ENDPOINT_DISABLED: _(
        "%(actor)s disabled the webhook endpoint %(target)s: %(reason)s"
    ),
    AuditAction.WEBHOOK_DELIVERY_REPLAYED: _(
        "%(actor)s sent the delivery %(target)s to %(url)s again."
    ),
    AuditAction.WEBHOOK_FAILED_RETRIED: _(
        "%(actor)s retried the %(count)s failed deliveries of the webhook endpoint %(target)s."
    ),
    AuditAction.WEBHOOK_DELIVERIES_RESENT: _(
        "%(actor)s sent the %(count)s deliveries since %(since)s to the webhook endpoint "
        "%(target)s again."
    ),
}


class AuditEntry(models.Model):
    """One change in a Survey account, who made it and to what; kept when that user is deleted."""

    account = models.ForeignKey(SurveyAccount, on_delete=models.CASCADE, related_name="+")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("person"),
    )
    actor_email = models.EmailField(_("person's email address"), blank=True)
    action = models.CharField(_("action"), max_length=64, choices=AuditAction.choices)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.PositiveBigIntegerField(null=True, blank=True)
    target_repr = models.CharField(max_length=200, blank=True)
    data = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(_("time"), default=timezone.now)

    objects = AccountQuerySet.as_manager()

    class Meta:
        verbose_name = _("audit log entry")
        verbose_name_plural = _("audit log entries")
        indexes: ClassVar = [
            models.Index(fields=["account", "-created_at", "-id"], name="survey_audit_newest"),
            models.Index(
                fields=["account", "action", "-created_at", "-id"], name="survey_audit_action"
            ),
            models.Index(
                fields=["account", "actor", "-created_at", "-id"], name="survey_audit_actor"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_email or '-'} at {self.created_at:%Y-%m-%d %H:%M}"

    def sentence(self) -> str:
        """The entry in the active language: "Ada changed bob@example.com's role to Member."."""
        values = audit.sentence_values(self)
        data = self.data if isinstance(self.data, dict) else {}
        if "role" in data:
            role = data["role"]
            values["role"] = MemberRole(role).label if role in MemberRole.values else ""
        if isinstance(data.get("emails"), list):
            values["emails"] = ", ".join(str(email) for email in data["emails"])
        return audit.sentence(self, SENTENCES, values)
