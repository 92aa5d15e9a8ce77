from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CrmImportsConfig(AppConfig):
    name = "kizuna.crm.imports"
    label = "crm_imports"
    verbose_name = _("CRM imports")
