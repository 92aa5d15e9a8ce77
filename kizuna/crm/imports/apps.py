"""CSV import and export of leads and contacts."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CrmImportsConfig(AppConfig):
    name = "kizuna.crm.imports"
    label = "crm_imports"
    verbose_name = _("CRM imports")

    def ready(self) -> None:
        from kizuna.crm.imports import hooks

        hooks.register()
