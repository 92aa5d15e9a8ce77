from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CrmIntegrationConfig(AppConfig):
    name = "kizuna.crm.integration"
    label = "crm_integration"
    verbose_name = _("Survey integration")

    def ready(self) -> None:
        from kizuna.crm.integration import hooks

        hooks.register()
