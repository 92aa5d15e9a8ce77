from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SurveyWebhooksConfig(AppConfig):
    name = "kizuna.survey.webhooks"
    label = "survey_webhooks"
    verbose_name = _("Survey webhooks")

    def ready(self) -> None:
        from kizuna.survey.webhooks import models, services
        from kizuna.work import leases, periodic

        # One endpoint gets a share of the lane's threads: a slow receiver waits alone.
        # Their endpoints are read once a claim (read_endpoints), not once a delivery.
        leases.register(
            models.Delivery,
            services.deliver,
            batch_size=20,
            lane_key="endpoint_id",
            prepare=services.read_endpoints,
        )
        periodic.register(services.probe_failing_endpoints, every_seconds=10)
        periodic.register(services.prune_deleted_responses, every_seconds=3600)
