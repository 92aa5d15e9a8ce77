from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SurveyWebhooksConfig(AppConfig):
    name = "kizuna.survey.webhooks"
    label = "survey_webhooks"
    verbose_name = _("Survey webhooks")
