"""The summary counters: what the results summary shows, counted per survey, question and day.

Maintained in the transaction of every submission and deletion (services.py), rebuilt from the
responses by `kizuna rebuild_survey_summaries`. Days are those of the deployment's time zone
(KIZUNA_TIME_ZONE), the zone of the results' date filter. See docs/adr/0005.
"""

from __future__ import annotations

from typing import ClassVar

from django.db import models

from kizuna.survey.models import Question, Survey


class DailyResponseCount(models.Model):
    """How many responses a survey received on one day: the summary's total and its chart of
    responses over time."""

    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["survey", "day"], name="survey_results_daily_responses")
        ]

    def __str__(self) -> str:
        return f"{self.survey_id} {self.day}: {self.count}"


class DailyAnswerCount(models.Model):
    """One figure of a question's summary on one day.

    `key` "" counts the question's answers, with the count, sum, minimum and maximum of those
    that are numbers; any other key counts one choice, scale point (rating, NPS) or matrix cell
    ("row<US>column") picked in them.
    """

    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="+")
    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    key = models.TextField(blank=True)
    count = models.BigIntegerField(default=0)
    numbers = models.BigIntegerField(default=0)
    total = models.FloatField(default=0)
    minimum = models.FloatField(null=True)
    maximum = models.FloatField(null=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["question", "day", "key"], name="survey_results_daily_answers"
            )
        ]
        indexes: ClassVar = [
            models.Index(fields=["survey", "day"], name="survey_results_answers_day")
        ]

    def __str__(self) -> str:
        return f"{self.question_id} {self.day} {self.key!r}: {self.count}"
