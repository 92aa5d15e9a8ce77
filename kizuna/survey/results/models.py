"""The summary counters: what the results summary shows, counted per survey, question and day.

Rows are added, never updated in place: each submission inserts its own (so concurrent
submissions never wait for one another), the summary sums them, and from time to time the rows
of a day are merged into one per figure (services.merge_counters). Maintained in the
transaction of every submission and deletion (services.py), rebuilt from the responses by
`kizuna rebuild_survey_summaries`. Days are those of the deployment's time zone
(KIZUNA_TIME_ZONE), the zone of the results' date filter. See docs/adr/0005.
"""

from __future__ import annotations

from typing import ClassVar

from django.db import models

from kizuna.survey.models import Question, Survey


class DailyAnswerCount(models.Model):
    """One figure of a survey's summary on one day (or a part of it: the summary sums them).

    Without a question, `count` counts the survey's responses. With one, `key` "" counts the
    question's answers, with the count, sum, minimum and maximum of those that are numbers; any
    other key counts one choice, scale point (rating, NPS) or matrix cell ("row<US>column")
    picked in them.
    """

    # Neither foreign key constraints nor indexes of their own: each submission inserts about
    # 20 rows, and each constraint is a check (and a row lock on the survey or question) at its
    # commit, each index one more insert. Deleting a survey or question still deletes its rows
    # (Django cascades, finding them by the index below).
    survey = models.ForeignKey(
        Survey, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    question = models.ForeignKey(
        Question,
        on_delete=models.CASCADE,
        null=True,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    day = models.DateField()
    key = models.TextField(blank=True)
    count = models.BigIntegerField(default=0)
    numbers = models.BigIntegerField(default=0)
    total = models.FloatField(default=0)
    minimum = models.FloatField(null=True)
    maximum = models.FloatField(null=True)

    class Meta:
        indexes: ClassVar = [
            models.Index(fields=["survey", "day"], name="survey_results_answers_day")
        ]

    def __str__(self) -> str:
        return f"{self.survey_id} {self.question_id} {self.day} {self.key!r}: {self.count}"
