from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WorkConfig(AppConfig):
    name = "kizuna.work"
    label = "work"
    verbose_name = _("Background work")

    def ready(self) -> None:
        from kizuna.work import leases
        from kizuna.work.models import ProbeWork
        from kizuna.work.services import handle_probe_work

        # One row per claim: probes are few, and each worker should get its share.
        leases.register(ProbeWork, handle_probe_work, batch_size=1, concurrency=1)
