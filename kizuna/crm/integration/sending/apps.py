from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CrmSurveySendingConfig(AppConfig):
    """Sending surveys from the CRM (E2, E3): the survey link placeholder, the editor's
    "Insert survey link" button and "Send survey" on lead and contact pages and lists."""

    name = "kizuna.crm.integration.sending"
    label = "crm_survey_sending"
    verbose_name = _("Survey sending")

    def ready(self) -> None:
        from kizuna.crm.integration.sending import hooks

        hooks.register()
