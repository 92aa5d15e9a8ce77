from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CrmMailConfig(AppConfig):
    name = "kizuna.crm.mail"
    label = "crm_mail"
    verbose_name = _("CRM mail")

    def ready(self) -> None:
        from kizuna.crm.mail import hooks
        from kizuna.crm.mail.models import BatchPreparation, OutgoingMessage
        from kizuna.crm.mail.services import (
            prepare_batch,
            send_outgoing_message,
            send_outgoing_messages,
        )
        from kizuna.work import leases

        leases.register(BatchPreparation, prepare_batch, batch_size=1)
        # One SMTP server per deployment: at most eight connections to it at once. With
        # four, a worker spent 5.3 ms of CPU a message instead of 3.4 (its lane claimed
        # fewer rows at a time) and sent half as fast (bench/crm_mail_send.py).
        # Rows claimed ahead of the free threads: a claim every 30 to 50 messages instead of
        # every one or two (a claim cost more of the worker's CPU than sending a message).
        # One thread sends them, a batch of up to eight at once over its eight connections,
        # each step of a batch one statement (services.send_outgoing_messages). Measured
        # against two threads of four and four of two (docs/benchmarks.md, "P3, sixth
        # session"): the same rate or better, and the least CPU a message.
        leases.register(
            OutgoingMessage,
            send_outgoing_message,
            batch_size=50,
            concurrency=8,
            claim_ahead=60,
            run_many=send_outgoing_messages,
            rows_per_run=8,
        )
        hooks.register()
