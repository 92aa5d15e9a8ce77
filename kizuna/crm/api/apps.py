from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CrmApiConfig(AppConfig):
    name = "kizuna.crm.api"
    label = "crm_api"
    verbose_name = _("CRM API")
