"""The CRM REST API v1 and personal API tokens."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CrmApiConfig(AppConfig):
    name = "kizuna.crm.api"
    label = "crm_api"
    verbose_name = _("CRM API")

    def ready(self) -> None:
        from kizuna.crm.api import hooks

        hooks.register()
