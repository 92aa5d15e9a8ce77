from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CrmMailConfig(AppConfig):
    name = "kizuna.crm.mail"
    label = "crm_mail"
    verbose_name = _("CRM mail")
