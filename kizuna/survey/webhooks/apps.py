from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SurveyWebhooksConfig(AppConfig):
    name = "kizuna.survey.webhooks"
    label = "survey_webhooks"
    verbose_name = _("Survey webhooks")

    def ready(self) -> None:
        from kizuna.survey.webhooks import models, services
        from kizuna.work import leases

        leases.register(models.Delivery, services.deliver, batch_size=20)
