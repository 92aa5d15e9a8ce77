from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SurveyKeysConfig(AppConfig):
    name = "kizuna.survey.keys"
    label = "survey_keys"
    verbose_name = _("SC keys")
