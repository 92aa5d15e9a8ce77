"""`kizuna rebuild_survey_summaries`: recount the results summaries from the stored responses."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from kizuna.survey.models import Survey
from kizuna.survey.results.services import rebuild_summary


class Command(BaseCommand):
    help = (
        "Recount the summary counters of every survey (or of --survey ID) from its responses: "
        "after changing KIZUNA_TIME_ZONE, restoring a backup or loading responses in bulk."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--survey", type=int, action="append", help="only this survey's id")

    def handle(self, *args: Any, **options: Any) -> None:
        surveys = Survey.objects.order_by("pk")
        if options["survey"]:
            surveys = surveys.filter(pk__in=options["survey"])
        for survey in surveys.iterator():
            counted = rebuild_summary(survey=survey)
            if options["verbosity"] > 1 or (options["verbosity"] and counted):
                self.stdout.write(f"survey {survey.pk}: {counted} responses counted")
