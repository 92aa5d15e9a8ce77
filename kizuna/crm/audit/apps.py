"""The CRM's audit trail: who changed roles, members, invitations, records, imports, templates."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CrmAuditConfig(AppConfig):
    name = "kizuna.crm.audit"
    label = "crm_audit"
    verbose_name = _("CRM audit log")
