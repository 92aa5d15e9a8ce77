"""GET /survey/api/v1/responses/deleted: the deletions a client that missed response.deleted
can still learn of, for DeletedResponse.RETENTION, in deletion order, of its own account only."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from kizuna.survey.models import AccountMember, Response, Survey
from kizuna.survey.results.services import delete_response
from kizuna.survey.webhooks.models import DeletedResponse
from kizuna.survey.webhooks.services import prune_deleted_responses
from kizuna.testing.survey_keys import make_response, sc_headers

pytestmark = pytest.mark.django_db

URL = "/survey/api/v1/responses/deleted"


def deleted(survey: Survey, reference: str, *, at: datetime.datetime) -> str:
    """The id of a response of `survey` deleted `at`."""
    response = make_response(survey, reference=reference)
    response_id = response.pk
    delete_response(response=response)
    DeletedResponse.objects.filter(response_id=response_id).update(deleted_at=at)
    return str(response_id)


def listed(client: Client, member: AccountMember, query: str = "") -> dict[str, Any]:
    answer = client.get(URL + query, **sc_headers(member))
    assert answer.status_code == 200, answer.content
    body: dict[str, Any] = answer.json()
    return body


def test_a_deleted_response_is_listed_with_its_survey_reference_and_times(
    client: Client, survey: Survey, ada_member: AccountMember
) -> None:
    response = make_response(survey, reference="crm:k:lead:7")
    response_id = response.pk
    delete_response(response=response)

    body = listed(client, ada_member)

    deletion = DeletedResponse.objects.get()
    assert body["items"] == [
        {
            "response_id": str(response_id),
            "survey": {"id": survey.pk, "title": survey.title},
            "recipient_reference": "crm:k:lead:7",
            "submitted_at": response.submitted_at.astimezone(datetime.UTC)
            .isoformat()
            .replace("+00:00", "Z"),
            "deleted_at": deletion.deleted_at.astimezone(datetime.UTC)
            .isoformat()
            .replace("+00:00", "Z"),
        }
    ]
    assert body["next_cursor"] is None
    assert not Response.objects.filter(pk=response_id).exists()


def test_deletions_are_listed_since_a_time_in_pages_in_deletion_order(
    client: Client, survey: Survey, ada_member: AccountMember
) -> None:
    now = timezone.now()
    old = deleted(survey, "lead:1", at=now - datetime.timedelta(days=2))
    newer = [
        deleted(survey, f"lead:{n}", at=now - datetime.timedelta(hours=10 - n)) for n in range(2, 5)
    ]
    since = (now - datetime.timedelta(days=1)).isoformat().replace("+00:00", "Z")

    first = listed(client, ada_member, f"?since={since}&limit=2")
    second = listed(client, ada_member, f"?limit=2&cursor={first['next_cursor']}")

    assert [i["response_id"] for i in first["items"]] == newer[:2]
    assert [i["response_id"] for i in second["items"]] == [newer[2]]
    assert second["next_cursor"] is None
    assert old not in {i["response_id"] for i in first["items"] + second["items"]}


def test_deletions_are_kept_for_the_retention_then_pruned_and_the_answer_says_since_when(
    client: Client, survey: Survey, ada_member: AccountMember
) -> None:
    now = timezone.now()
    kept = deleted(
        survey, "lead:1", at=now - DeletedResponse.RETENTION + datetime.timedelta(hours=1)
    )
    deleted(survey, "lead:2", at=now - DeletedResponse.RETENTION - datetime.timedelta(hours=1))

    body = listed(client, ada_member)
    pruned = prune_deleted_responses()

    assert [i["response_id"] for i in body["items"]] == [kept]
    complete_since = datetime.datetime.fromisoformat(body["complete_since"])
    assert (
        now - DeletedResponse.RETENTION
        <= complete_since
        <= timezone.now() - DeletedResponse.RETENTION
    )
    assert pruned == 1
    assert list(DeletedResponse.objects.values_list("response_id", flat=True)) == [uuid.UUID(kept)]


def test_another_account_never_sees_the_deletions_even_by_survey_id(
    client: Client, survey: Survey, ada_member: AccountMember, carol_member: AccountMember
) -> None:
    deleted(survey, "lead:1", at=timezone.now())

    assert listed(client, carol_member)["items"] == []
    assert listed(client, carol_member, f"?survey={survey.pk}")["items"] == []
    assert len(listed(client, ada_member, f"?survey={survey.pk}")["items"]) == 1
    assert listed(client, ada_member, f"?survey={survey.pk + 1000}")["items"] == []


def test_a_since_without_time_zone_is_a_field_error(
    client: Client, ada_member: AccountMember
) -> None:
    answer = client.get(URL + "?since=2026-11-01T00:00:00", **sc_headers(ada_member))

    assert answer.status_code == 422
    assert answer.json()["error"]["fields"] == {"since": ["Give the time with its time zone."]}
