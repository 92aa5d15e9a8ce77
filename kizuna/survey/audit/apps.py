"""The Survey service's audit trail: who changed members, portals, surveys, SC keys, webhooks."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SurveyAuditConfig(AppConfig):
    name = "kizuna.survey.audit"
    label = "survey_audit"
    verbose_name = _("Survey audit log")
