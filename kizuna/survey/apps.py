from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SurveyConfig(AppConfig):
    name = "kizuna.survey"
    label = "survey"
    verbose_name = _("Survey")

    def ready(self) -> None:
        from kizuna.survey import models, services
        from kizuna.work import leases

        # A member invitation's job: recording that it expired, due at its expiry.
        leases.register(
            models.MemberInvitation,
            services.expire_member_invitation,
            batch_size=50,
            concurrency=2,
        )
