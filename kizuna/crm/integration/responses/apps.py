from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CrmSurveyResponsesConfig(AppConfig):
    """Survey responses in the CRM (E1, E4, D6): the webhook intake, reconciliation, the
    Survey section of lead and contact pages and the API's survey-responses routes."""

    name = "kizuna.crm.integration.responses"
    label = "crm_survey_responses"
    verbose_name = _("Survey responses")

    def ready(self) -> None:
        from kizuna.crm.integration.models import Reconciliation
        from kizuna.crm.integration.responses import hooks, services
        from kizuna.work import leases

        leases.register(Reconciliation, services.run_reconciliation, batch_size=5, concurrency=2)
        hooks.register()
