"""A record deleted while a PATCH (or the edit page) is changing it: 404, not 500.

The request reads the record, validates the values, then locks the row to save it.
Here another transaction holds that row's lock; once the request waits on it, the
other transaction deletes the row and commits, so the request's lock finds nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, connections, transaction

from kizuna.crm.models import Activity, Lead, Membership, Organization
from kizuna.identity.models import User
from kizuna.testing.crm_api import ApiClient
from kizuna.testing.races import require_postgresql

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgresql_only() -> None:
    require_postgresql("needs PostgreSQL row locks and concurrent transactions")


def _waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        # Statistics are a snapshot per transaction: take a fresh one each time.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        (count,) = cursor.fetchone()
    return bool(count)


def _delete_while_waiting(lead: Lead, request: Callable[[], Any]) -> Any:
    """Run `request` in a thread; delete `lead` once the request waits for its row lock."""
    answers: list[Any] = []

    def run() -> None:
        try:
            answers.append(request())
        except Exception as error:  # the test client re-raises a view's error (a 500)
            answers.append(error)
        finally:
            connections.close_all()

    with transaction.atomic():
        Lead.objects.select_for_update().get(pk=lead.pk)
        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 10
        while not _waiting_on_a_lock():
            assert time.monotonic() < deadline, "the request never waited for the row lock"
            time.sleep(0.02)
        Lead.objects.filter(pk=lead.pk).delete()
    thread.join(timeout=30)
    [answer] = answers
    if isinstance(answer, Exception):
        raise answer
    return answer


@pytest.fixture
def lead(
    organization: Organization,
    other_organization: Organization,
    ada: User,
    ada_membership: Membership,
) -> Lead:
    Lead.objects.create(organization=other_organization, family_name="Elsewhere")
    Lead.objects.create(organization=organization, family_name="Stays")
    return Lead.objects.create(organization=organization, family_name="Gone", owner=ada)


def test_patch_of_a_lead_deleted_meanwhile_answers_404_with_the_usual_error_body(
    ada_api: ApiClient, lead: Lead
) -> None:
    missing = ada_api.patch("/leads/999999", {"family_name": "X"})

    response = _delete_while_waiting(
        lead, lambda: ada_api.patch(f"/leads/{lead.pk}", {"family_name": "Renamed"})
    )

    assert response.status_code == 404
    assert missing.status_code == 404
    assert response.json() == missing.json()
    assert not Lead.objects.filter(family_name="Renamed").exists()
    assert list(Lead.objects.order_by("family_name").values_list("family_name", flat=True)) == [
        "Elsewhere",
        "Stays",
    ]
    assert not Activity.objects.filter(lead_id=lead.pk).exists()


def test_edit_page_of_a_lead_deleted_meanwhile_answers_404(ada_client: Any, lead: Lead) -> None:
    response = _delete_while_waiting(
        lead,
        lambda: ada_client.post(
            f"/crm/leads/{lead.pk}/edit/",
            {"family_name": "Renamed", "status": "new", "lead_source": ""},
        ),
    )

    assert response.status_code == 404
    assert not Lead.objects.filter(family_name="Renamed").exists()
