"""`kizuna worker`: run background work until stopped (see kizuna.work.workers)."""

from __future__ import annotations

import logging
import os
import sys
from argparse import ArgumentParser, ArgumentTypeError
from typing import Any

from django.core.management.base import BaseCommand
from django.db import connections
from django.utils.translation import gettext as _
from django_tasks_db.management.commands.db_worker import valid_interval, validate_worker_id

from kizuna.work.startup import check_database
from kizuna.work.workers import DEFAULT_CONCURRENCY, KizunaWorker


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ArgumentTypeError(_("Enter a whole number of at least 1."))
    return number


class Command(BaseCommand):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Translated at run time: argparse needs a str, not a lazy string.
        self.help = _(
            "Run background work: django-tasks tasks (with retries) and leased work rows, "
            "with a heartbeat and recovery of work left behind by dead workers."
        )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--batch",
            "--once",
            action="store_true",
            dest="batch",
            help=_("Run everything that is due now, then exit."),
        )
        parser.add_argument(
            "--interval",
            type=valid_interval,
            default=1.0,
            help=_("Seconds to wait when there is nothing to do (default: %(default)s)."),
        )
        parser.add_argument(
            "--concurrency",
            type=positive_int,
            default=DEFAULT_CONCURRENCY,
            help=_(
                "Rows of each kind of work (webhook deliveries, emails) handled at once; "
                "one endpoint gets a quarter of them, more only while no other needs them "
                "(default: %(default)s)."
            ),
        )
        parser.add_argument(
            "--queue-name",
            default="default",
            help=_("Task queues to run, separated by commas; * for all (default: %(default)s)."),
        )
        parser.add_argument(
            "--worker-id",
            type=validate_worker_id,
            default=None,
            help=_("Unique id of this worker (default: host name, process id and a random part)."),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["verbosity"] > 1:
            logging.getLogger("kizuna.work").setLevel(logging.DEBUG)
        check_database()
        worker = KizunaWorker(
            queue_names=options["queue_name"].split(","),
            interval=options["interval"],
            batch=options["batch"],
            worker_id=options["worker_id"],
            concurrency=options["concurrency"],
        )
        worker.configure_signals()
        worker.run()
        if not options["batch"]:
            # Stopped cleanly. Collecting the heap of a long-running process at exit
            # took seconds on a loaded machine, and `kizuna serve` waits for it: leave now.
            connections.close_all()
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
