"""The published webhook contracts: schemas, examples, and the payloads really sent."""

from __future__ import annotations

import copy
import datetime

import pytest

from kizuna import contracts


@pytest.mark.parametrize("event_type", contracts.EVENT_TYPES)
def test_each_example_validates_against_its_schema(event_type):
    assert contracts.errors(contracts.example(event_type), contracts.schema(event_type)) == []


@pytest.mark.parametrize("event_type", contracts.EVENT_TYPES)
def test_each_schema_is_draft_2020_12_for_its_own_event(event_type):
    schema = contracts.schema(event_type)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["type"] == {"const": event_type}


def test_the_checker_reports_what_is_wrong():
    body = copy.deepcopy(contracts.example("response.completed"))
    body["type"] = "response.created"
    del body["data"]["response_id"]
    body["data"]["submitted_at"] = "yesterday"
    body["data"]["answers"][0]["question"]["kind"] = "essay"
    body["data"]["extra"] = 1

    assert sorted(contracts.errors(body, contracts.schema("response.completed"))) == sorted(
        [
            "$.type: must be 'response.completed'",
            "$.data: missing 'response_id'",
            "$.data.submitted_at: not a valid date-time: 'yesterday'",
            "$.data.answers[0].question.kind: must be one of "
            "['single_choice', 'multiple_choice', 'dropdown', 'short_text', 'long_text', "
            "'number', 'email', 'date', 'rating', 'nps', 'matrix']",
            "$.data: unexpected 'extra'",
        ]
    )


def test_a_time_without_time_zone_is_refused():
    body = copy.deepcopy(contracts.example("invitation.opened"))
    body["data"]["opened_at"] = datetime.datetime(2026, 1, 1).isoformat()
    assert contracts.errors(body, contracts.schema("invitation.opened")) == [
        "$.data.opened_at: date-time without a time zone: '2026-01-01T00:00:00'"
    ]


def test_unknown_events_have_no_contract():
    with pytest.raises(ValueError, match=r"response\.created"):
        contracts.schema("response.created")
