"""A page of the reconciliation pull (record_responses) holding responses to the personal
links of an earlier connection of the organization (disabled since, then connected again):
they are the organization's and are recorded, read against the organization's reference keys
read once for the page; a link of another organization's connection is not (E4, issue 14)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.db import connection as database
from django.db import transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from kizuna.crm.integration.models import Connection, ConnectionState, SurveyResponse
from kizuna.crm.integration.responses import services
from kizuna.crm.models import Lead, Organization
from kizuna.testing.intake import completed, new_connection

pytestmark = pytest.mark.django_db


@pytest.fixture
def earlier(organization: Organization) -> Connection:
    """The organization's connection before the current one, disabled a day ago."""
    return new_connection(
        organization,
        state=ConnectionState.DISABLED,
        disabled_at=timezone.now() - datetime.timedelta(days=1),
    )


def item(connection: Connection, record: Lead, response_id: str) -> dict[str, Any]:
    """One response of GET /responses to `record`'s personal link of `connection`."""
    return completed(connection, record, response_id=response_id)["data"]


def record_page(connection: Connection, items: list[dict[str, Any]]) -> int:
    with transaction.atomic():
        return services.record_responses(connection, items)


def test_e4_a_page_records_a_response_to_an_earlier_connections_link_and_not_another_organizations(
    earlier: Connection,
    connection: Connection,
    other_connection: Connection,
    organization: Organization,
    other_organization: Organization,
):
    hana = Lead.objects.create(organization=organization, family_name="Hana")
    charlies_lead = Lead.objects.create(organization=other_organization, family_name="Charlie")

    page = [item(earlier, hana, "r-earlier"), item(other_connection, charlies_lead, "r-theirs")]
    assert record_page(connection, page) == 1

    assert list(SurveyResponse.objects.values_list("connection_id", "lead_id", "response_id")) == [
        (connection.pk, hana.pk, "r-earlier")
    ]


def test_e4_a_page_of_earlier_links_takes_the_queries_of_a_page_of_one_whatever_its_size(
    earlier: Connection, connection: Connection, organization: Organization
):
    """The organization's reference keys are read once for the page, not once a response."""
    leads = [
        Lead.objects.create(organization=organization, family_name=name)
        for name in ("Hana", "Mori", "Kato", "Sato")
    ]
    with CaptureQueriesContext(database) as page_of_one:
        assert record_page(connection, [item(earlier, leads[0], "r-0")]) == 1
    with CaptureQueriesContext(database) as page_of_three:
        page = [item(earlier, lead, f"r-{n}") for n, lead in enumerate(leads[1:], start=1)]
        assert record_page(connection, page) == 3

    assert len(page_of_three.captured_queries) == len(page_of_one.captured_queries)
    assert SurveyResponse.objects.filter(connection=connection).count() == 4
