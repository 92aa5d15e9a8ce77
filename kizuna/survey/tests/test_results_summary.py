"""The summary read from counters equals a plain recount of every answer (issue #13).

Responses are submitted through the submission service on chosen days (the clock set back),
deleted through the moderation service, and the survey edited (questions and choices
archived); after each story the summary of any date range must equal what counting every
stored answer gives, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import csv
import datetime
import io
import zoneinfo
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.db.models import Max, Min, Sum
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kizuna.survey.models import Question, Response, Survey
from kizuna.survey.public import services as public_services
from kizuna.survey.results import services as results_services
from kizuna.survey.results import summaries
from kizuna.survey.results.models import DailyAnswerCount
from kizuna.survey.tests.respondent import add_question
from kizuna.testing.races import require_postgresql, run_together
from kizuna.testing.results_recount import export_rows, recount, responses_per_day

KINDS = [
    "single_choice",
    "multiple_choice",
    "dropdown",
    "short_text",
    "long_text",
    "number",
    "email",
    "date",
    "rating",
    "nps",
    "matrix",
]
FIRST_DAY = datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC)

CHOICE = st.sampled_from(["a", "b", "c"])
TEXT = st.characters(exclude_categories=("Cs", "Cc"))  # what validation lets through
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "single_choice": CHOICE,
    "dropdown": CHOICE,
    "multiple_choice": st.lists(CHOICE, min_size=1, max_size=3, unique=True),
    "short_text": st.text(TEXT, min_size=1, max_size=8),
    "long_text": st.text(TEXT, min_size=1, max_size=20),
    "email": st.sampled_from(["a@example.com", "b@example.com"]),
    "date": st.sampled_from(["2026-11-01", "2027-01-31"]),
    # integers and halves: sums in any order are exact, as the recount's must be to compare
    "number": st.one_of(st.integers(-1000, 1000), st.integers(-2000, 2000).map(lambda n: n + 0.5)),
    "rating": st.integers(1, 5),
    "nps": st.integers(0, 10),
    "matrix": st.dictionaries(
        st.sampled_from(["speed", "price"]), st.sampled_from(["good", "bad"]), min_size=1
    ),
}
ANSWERS = st.fixed_dictionaries({kind: st.one_of(st.none(), VALUES[kind]) for kind in KINDS})
# when (hours after the first day, in UTC: Tokyo's days start at 15:00) and what
# and whether the counters of its day are merged after it
RESPONSES = st.lists(
    st.tuples(st.integers(0, 24 * 6), ANSWERS, st.booleans()), min_size=0, max_size=12
)
DAYS = st.one_of(st.none(), st.dates(datetime.date(2026, 10, 31), datetime.date(2026, 11, 8)))


def every_kind(survey: Survey) -> dict[str, Question]:
    return {kind: add_question(survey, kind, f"About {kind}") for kind in KINDS}


def submit_at(
    survey: Survey, questions: dict[str, Question], at: datetime.datetime, answers: dict[str, Any]
) -> Response:
    with mock.patch("django.utils.timezone.now", return_value=at):
        return submit(survey, questions, answers)


def submit(survey: Survey, questions: dict[str, Question], answers: dict[str, Any]) -> Response:
    return public_services.submit_response(
        survey=survey,
        invitation=None,
        answers={questions[kind]: value for kind, value in answers.items()},
        language="en",
    )


def assert_summary_is_the_recount(
    survey: Survey, date_from: datetime.date | None, date_to: datetime.date | None
) -> None:
    responses = summaries.filter_responses(
        Response.objects.filter(survey=survey), date_from=date_from, date_to=date_to
    )
    fast = summaries.summarize(survey, date_from=date_from, date_to=date_to)
    assert fast == recount(survey, responses)
    assert summaries.responses_per_day(
        survey, date_from=date_from, date_to=date_to
    ) == responses_per_day(responses)


def counters(survey: Survey) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    """The counters summed per figure, as the summary reads them."""
    answers = (
        DailyAnswerCount.objects.filter(survey=survey)
        .values("question_id", "day", "key")
        .annotate(
            answers=Sum("count"),
            number_count=Sum("numbers"),
            number_total=Sum("total"),
            smallest=Min("minimum"),
            largest=Max("maximum"),
        )
        .exclude(answers=0)
        .values_list(
            "question_id",
            "day",
            "key",
            "answers",
            "number_count",
            "number_total",
            "smallest",
            "largest",
        )
    )
    days = (
        DailyAnswerCount.objects.filter(survey=survey, question=None)
        .values("day")
        .annotate(responses=Sum("count"))
        .exclude(responses=0)
        .values_list("day", "responses")
    )
    return set(answers), set(days)


@pytest.mark.django_db
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    responses=RESPONSES,
    deleted=st.sets(st.integers(0, 11), max_size=4),
    archive=st.booleans(),
    ranges=st.lists(st.tuples(DAYS, DAYS), min_size=1, max_size=3),
)
def test_i13_summary_of_any_period_equals_a_plain_recount(
    survey: Survey,
    responses: list[tuple[int, dict[str, Any], bool]],
    deleted: set[int],
    archive: bool,
    ranges: list[tuple[datetime.date | None, datetime.date | None]],
) -> None:
    survey = Survey.objects.create(portal=survey.portal, title="Pulse", language="en")
    questions = every_kind(survey)
    stored = []
    for hours, answers, merge in responses:
        stored.append(
            submit_at(survey, questions, FIRST_DAY + datetime.timedelta(hours=hours), answers)
        )
        if merge:
            day = results_services.summary_day(stored[-1].submitted_at)
            results_services.merge_counters(survey_id=survey.pk, day=day)
    for index in sorted(deleted):
        if index < len(stored):
            results_services.delete_response(response=stored[index])
    if archive:
        choice = questions["single_choice"]
        choice.options = {
            "choices": [
                {"key": "a", "label": "Apple", "archived": True},
                {"key": "b", "label": "Banana"},
                {"key": "c", "label": "Cherry"},
            ]
        }
        choice.is_archived = True
        choice.save(update_fields=["options", "is_archived"])

    for date_from, date_to in [(None, None), *ranges]:
        assert_summary_is_the_recount(survey, date_from, date_to)
    maintained = counters(survey)
    results_services.rebuild_summary(survey=survey)
    assert counters(survey) == maintained


# What the export must display exactly: formulas, quotes and backslashes (escaped in JSON),
# Japanese (escaped on SQLite), numbers JSON and Python write differently
TRICKY_TEXT = st.sampled_from(
    ["=1+1", "-12.5", "+81 3", '"quoted"', "back\\slash", "とても良い", "@x", "a,b"]
)
EXPORTED: dict[str, st.SearchStrategy[Any]] = {
    **VALUES,
    "short_text": st.one_of(VALUES["short_text"], TRICKY_TEXT),
    "long_text": st.one_of(VALUES["long_text"], TRICKY_TEXT),
    "number": st.one_of(VALUES["number"], st.sampled_from([1e-07, 1e16, 0.1, 2.5e-05, -0.5])),
}
EXPORTED_ANSWERS = st.fixed_dictionaries(
    {kind: st.one_of(st.none(), EXPORTED[kind]) for kind in KINDS}
)


@pytest.mark.django_db
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    responses=st.lists(st.tuples(st.integers(0, 24 * 6), EXPORTED_ANSWERS), max_size=10),
    batch=st.integers(1, 4),
    archive=st.booleans(),
    date_from=DAYS,
)
def test_i13_export_of_random_answers_equals_a_plain_export(
    ada_client: Any,
    survey: Survey,
    responses: list[tuple[int, dict[str, Any]]],
    batch: int,
    archive: bool,
    date_from: datetime.date | None,
) -> None:
    survey = Survey.objects.create(portal=survey.portal, title="Pulse", language="en")
    questions = every_kind(survey)
    for hours, answers in responses:
        submit_at(survey, questions, FIRST_DAY + datetime.timedelta(hours=hours), answers)
    if archive:
        questions["multiple_choice"].options = {
            "choices": [
                {"key": "a", "label": "Apple", "archived": True},
                {"key": "b", "label": "=Banana"},
            ]
        }
        questions["multiple_choice"].is_archived = True
        questions["multiple_choice"].save(update_fields=["options", "is_archived"])
    url = reverse("survey:survey_results:export", args=[survey.pk])
    query = {"date_from": date_from.isoformat()} if date_from else {}

    with mock.patch.object(summaries, "EXPORT_BATCH", batch):
        page = ada_client.get(url, query)
        body = b"".join(page.streaming_content).decode("utf-8-sig")

    selected = summaries.filter_responses(
        Response.objects.filter(survey=survey), date_from=date_from, date_to=None
    )
    assert list(csv.reader(io.StringIO(body)))[1:] == export_rows(survey, selected)


# Time zones whose offset is not whole hours, changes twice a year, changes by half an hour
# (Lord Howe) or had seconds (Tokyo's local mean time until 1888), and instants near changes
ZONES = st.sampled_from(
    [
        "Asia/Tokyo",
        "UTC",
        "America/New_York",
        "Asia/Kolkata",
        "Asia/Kathmandu",
        "America/St_Johns",
        "Australia/Lord_Howe",
    ]
)
CHANGES = [
    datetime.datetime(2026, 3, 8, 7, tzinfo=datetime.UTC),  # New York, into summer time
    datetime.datetime(2026, 11, 1, 6, tzinfo=datetime.UTC),  # and out of it
    datetime.datetime(2026, 4, 4, 15, tzinfo=datetime.UTC),  # Lord Howe, half an hour back
    datetime.datetime(2026, 10, 3, 15, 30, tzinfo=datetime.UTC),  # and forward
    datetime.datetime(1887, 12, 31, 14, 41, 1, tzinfo=datetime.UTC),  # Tokyo, mean time ends
]
INSTANTS = st.one_of(
    st.datetimes(
        datetime.datetime(1850, 1, 1),
        datetime.datetime(2100, 1, 1),
        timezones=st.just(datetime.UTC),
    ),
    st.builds(
        lambda change, seconds: change + datetime.timedelta(seconds=seconds),
        st.sampled_from(CHANGES),
        st.floats(-7200, 7200),
    ),
)


@pytest.mark.django_db
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(zone=ZONES, instants=st.lists(INSTANTS, min_size=1, max_size=8))
def test_i13_export_writes_each_time_as_isoformat_does_in_the_time_zone(
    survey: Survey, zone: str, instants: list[datetime.datetime]
) -> None:
    survey = Survey.objects.create(portal=survey.portal, title="Pulse", language="en")
    questions = every_kind(survey)
    for at in instants:
        submit_at(survey, questions, at, {"nps": 9})
    responses = Response.objects.filter(survey=survey)

    with timezone.override(zoneinfo.ZoneInfo(zone)):
        body = "".join(summaries.csv_lines(survey, responses))
        expected = export_rows(survey, responses)

    assert list(csv.reader(io.StringIO(body)))[1:] == expected


def planner_settings() -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('jit', 'max_parallel_workers_per_gather', 'work_mem') ORDER BY name"
        )
        return list(cursor.fetchall())


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize("read", ["whole", "left_after_a_batch"])
def test_i13_the_export_gives_the_connection_back_with_its_planner_settings(
    survey: Survey, read: str
) -> None:
    require_postgresql("the export's planner settings are PostgreSQL's")
    questions = every_kind(survey)
    for hours in range(3):
        submit_at(survey, questions, FIRST_DAY + datetime.timedelta(hours=hours), {"nps": 9})
    before = planner_settings()

    with mock.patch.object(summaries, "EXPORT_BATCH", 1):
        lines = summaries.csv_lines(survey, Response.objects.filter(survey=survey))
        chunks = [next(lines), next(lines)]  # the header, the first response
        during = planner_settings()
        if read == "whole":
            chunks += list(lines)
        lines.close()

    assert len(chunks) == (4 if read == "whole" else 2)
    assert during == [
        ("jit", "off"),
        ("max_parallel_workers_per_gather", "0"),
        ("work_mem", "32768"),
    ]
    assert planner_settings() == before


@pytest.mark.django_db
def test_i13_deleting_the_smallest_and_largest_number_recounts_them(survey: Survey) -> None:
    questions = every_kind(survey)
    at = FIRST_DAY + datetime.timedelta(hours=1)
    low = submit_at(survey, questions, at, {"number": -5})
    submit_at(survey, questions, at, {"number": 3})
    high = submit_at(survey, questions, at, {"number": 12.5, "nps": 10})

    results_services.delete_response(response=low)
    results_services.delete_response(response=high)

    [summary] = [
        s
        for s in summaries.summarize(survey, date_from=None, date_to=None)
        if s.question.kind == "number"
    ]
    assert (summary.answered, summary.minimum, summary.maximum, summary.average) == (1, 3, 3, 3)
    assert_summary_is_the_recount(survey, None, None)


@pytest.mark.django_db
def test_i13_the_summary_page_makes_as_many_queries_for_many_responses_as_for_few(
    ada_client: Any, survey: Survey
) -> None:
    questions = every_kind(survey)
    answers = {
        "single_choice": "a",
        "multiple_choice": ["a", "b"],
        "short_text": "hello",
        "number": 4,
        "nps": 9,
        "matrix": {"speed": "good"},
    }
    url = reverse("survey:survey_results:summary", args=[survey.pk])

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert ada_client.get(url, {"date_from": "2026-11-01"}).status_code == 200
        return len(captured)

    submit_at(survey, questions, FIRST_DAY, answers)
    queries()  # the first request of a session makes a few of its own
    few = queries()
    for hours in range(40):
        submit_at(survey, questions, FIRST_DAY + datetime.timedelta(hours=hours), answers)

    assert queries() == few


def test_i13_rebuild_command_recounts_responses_written_in_bulk(db: Any, survey: Survey) -> None:
    from django.core.management import call_command

    questions = every_kind(survey)
    submit_at(survey, questions, FIRST_DAY, {"rating": 4, "single_choice": "b"})
    DailyAnswerCount.objects.filter(survey=survey).delete()

    call_command("rebuild_survey_summaries", "--survey", str(survey.pk), verbosity=0)

    assert_summary_is_the_recount(survey, None, None)
    assert DailyAnswerCount.objects.get(survey=survey, question=None).count == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_i13_concurrent_submissions_and_merges_count_every_response_once(survey: Survey) -> None:
    require_postgresql("SQLite runs one writer at a time")
    questions = every_kind(survey)
    answers = {"single_choice": "a", "multiple_choice": ["b", "a"], "nps": 7, "number": 2}

    def submit_five() -> None:
        for _ in range(5):
            submit(survey, questions, answers)

    # The clock is patched once around the threads: patched in each thread, the patches
    # overlapped and one was never undone, freezing the clock of every later test.
    with (
        mock.patch("django.utils.timezone.now", return_value=FIRST_DAY),
        mock.patch.object(results_services, "MERGE_EVERY", 2),  # merges among submissions
    ):
        errors = run_together(*[submit_five] * 8)

    assert errors == []
    assert summaries.responses_per_day(survey, date_from=None, date_to=None) == {
        results_services.summary_day(FIRST_DAY): 40
    }
    assert_summary_is_the_recount(survey, None, None)


@pytest.mark.django_db
def test_i13_merging_leaves_one_counter_row_per_figure_and_day(survey: Survey) -> None:
    questions = every_kind(survey)
    for hours in range(6):
        submit_at(survey, questions, FIRST_DAY + datetime.timedelta(hours=hours), {"nps": hours})
    day = results_services.summary_day(FIRST_DAY)
    before = counters(survey)

    results_services.merge_counters(survey_id=survey.pk, day=day)

    assert counters(survey) == before
    assert DailyAnswerCount.objects.filter(survey=survey, question=None).count() == 1
    nps_rows = DailyAnswerCount.objects.filter(question=questions["nps"])
    assert nps_rows.count() == 1 + 6  # answered, and each of the six points


@pytest.mark.django_db
def test_i13_the_export_reads_in_batches_and_loses_or_repeats_no_response(
    ada_client: Any, survey: Survey
) -> None:
    questions = every_kind(survey)
    stored = [
        submit_at(
            survey,
            questions,
            FIRST_DAY + datetime.timedelta(hours=number // 3),  # three at each instant
            {"single_choice": "b", "matrix": {"speed": "good"}, "number": number},
        )
        for number in range(7)
    ]
    expected = sorted(stored, key=lambda response: (response.submitted_at, str(response.pk)))
    url = reverse("survey:survey_results:export", args=[survey.pk])

    with mock.patch.object(summaries, "EXPORT_BATCH", 2):
        page = ada_client.get(url)
        body = b"".join(page.streaming_content).decode("utf-8-sig")

    rows = list(csv.reader(io.StringIO(body)))[1:]
    assert [row[0] for row in rows] == [str(response.pk) for response in expected]
    assert [row[4 + 10] for row in rows] == ["Speed: Good"] * 7
    assert sorted(int(row[4 + 5]) for row in rows) == list(range(7))
