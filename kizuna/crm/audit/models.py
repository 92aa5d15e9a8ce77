"""The audit trail of an organization: one row per change an administrator may ask about."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from kizuna.crm.models import Organization, OrganizationQuerySet, Role
from kizuna.lib import audit


class AuditAction(models.TextChoices):
    ORGANIZATION_RENAMED = "organization.renamed", _("Organization renamed")
    MEMBER_ROLE_CHANGED = "member.role_changed", _("Member's role changed")
    MEMBER_DEACTIVATED = "member.deactivated", _("Member deactivated")
    MEMBER_REACTIVATED = "member.reactivated", _("Member reactivated")
    INVITATION_SENT = "invitation.sent", _("Invitation sent")
    INVITATION_RESENT = "invitation.resent", _("Invitation sent again")
    INVITATION_REVOKED = "invitation.revoked", _("Invitation withdrawn")
    INVITATION_ACCEPTED = "invitation.accepted", _("Invitation accepted")
    RECORDS_DELETED = "records.deleted", _("Leads or contacts deleted")
    IMPORT_STARTED = "import.started", _("Import started")
    IMPORT_FINISHED = "import.finished", _("Import finished")
    EMAIL_TEMPLATE_CREATED = "email_template.created", _("Email template created")
    EMAIL_TEMPLATE_CHANGED = "email_template.changed", _("Email template changed")
    EMAIL_TEMPLATE_DELETED = "email_template.deleted", _("Email template deleted")
    INTEGRATION_ENABLED = "integration.enabled", _("Survey integration enabled")
    INTEGRATION_DISABLED = "integration.disabled", _("Survey integration disabled")
    INTEGRATION_RECONNECTED = "integration.reconnected", _("Survey integration reconnected")
    INTEGRATION_FINISHED_WITHOUT_SURVEY = (
        "integration.finished_without_survey",
        _("Survey integration disabled without the Survey service"),
    )


# Each entry read as a sentence; %(actor)s and %(target)s are names, the rest comes from `data`.
SENTENCES = {
    AuditAction.ORGANIZATION_RENAMED: _(
        "%(actor)s renamed the organization from “%(old)s” to “%(new)s”."
    ),
    AuditAction.MEMBER_ROLE_CHANGED: _("%(actor)s changed %(target)s's role to %(role)s."),
    AuditAction.MEMBER_DEACTIVATED: _("%(actor)s deactivated %(target)s."),
    AuditAction.MEMBER_REACTIVATED: _("%(actor)s reactivated %(target)s."),
    AuditAction.INVITATION_SENT: _("%(actor)s invited %(target)s as %(role)s."),
    AuditAction.INVITATION_RESENT: _("%(actor)s sent the invitation to %(target)s again."),
    AuditAction.INVITATION_REVOKED: _("%(actor)s withdrew the invitation to %(target)s."),
    AuditAction.INVITATION_ACCEPTED: _("%(actor)s accepted an invitation and joined as %(role)s."),
    AuditAction.IMPORT_STARTED: _("%(actor)s started importing “%(target)s” into %(module)s."),
    AuditAction.IMPORT_FINISHED: _(
        "%(actor)s's import of “%(target)s” finished: %(created)s created, %(skipped)s skipped."
    ),
    AuditAction.EMAIL_TEMPLATE_CREATED: _("%(actor)s created the email template “%(target)s”."),
    AuditAction.EMAIL_TEMPLATE_CHANGED: _("%(actor)s changed the email template “%(target)s”."),
    AuditAction.EMAIL_TEMPLATE_DELETED: _("%(actor)s deleted the email template “%(target)s”."),
    AuditAction.INTEGRATION_ENABLED: _("%(actor)s enabled the Survey integration."),
    AuditAction.INTEGRATION_DISABLED: _("%(actor)s disabled the Survey integration."),
    AuditAction.INTEGRATION_RECONNECTED: _("%(actor)s reconnected the Survey integration."),
    AuditAction.INTEGRATION_FINISHED_WITHOUT_SURVEY: _(
        "%(actor)s finished disabling the Survey integration without the Survey service."
    ),
}
MODULES = {"leads": _("leads"), "contacts": _("contacts")}


class AuditEntry(models.Model):
    """One change in an organization, who made it and to what; kept when that user is deleted."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
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

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        verbose_name = _("audit log entry")
        verbose_name_plural = _("audit log entries")
        indexes: ClassVar = [
            models.Index(fields=["organization", "-created_at", "-id"], name="crm_audit_newest"),
            models.Index(
                fields=["organization", "action", "-created_at", "-id"], name="crm_audit_action"
            ),
            models.Index(
                fields=["organization", "actor", "-created_at", "-id"], name="crm_audit_actor"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_email or '-'} at {self.created_at:%Y-%m-%d %H:%M}"

    def sentence(self) -> str:
        """The entry in the active language: "Ada changed Bob's role to Administrator."."""
        values = audit.sentence_values(self)
        data = self.data if isinstance(self.data, dict) else {}
        if "role" in data:
            values["role"] = Role(data["role"]).label if data["role"] in Role.values else ""
        values["module"] = MODULES.get(data.get("module", ""), "")
        if self.action == AuditAction.RECORDS_DELETED:
            return self._deleted_sentence(values, is_lead=data.get("module") == "leads")
        return audit.sentence(self, SENTENCES, values)

    def _deleted_sentence(self, values: audit.SentenceValues, *, is_lead: bool) -> str:
        count = int(values.get("count") or 0)
        if count == 1 and self.target_repr:
            if is_lead:
                return gettext("%(actor)s deleted the lead “%(target)s”.") % values
            return gettext("%(actor)s deleted the contact “%(target)s”.") % values
        if is_lead:
            text = ngettext(
                "%(actor)s deleted %(count)d lead.", "%(actor)s deleted %(count)d leads.", count
            )
        else:
            text = ngettext(
                "%(actor)s deleted %(count)d contact.",
                "%(actor)s deleted %(count)d contacts.",
                count,
            )
        return text % {**values, "count": count}
