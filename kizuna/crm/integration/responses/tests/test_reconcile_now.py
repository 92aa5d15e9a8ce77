"""'Run now' of reconciliation when it cannot run (E4): the administrator is told why and
nothing is queued. Two organizations are in the database; Charlie's has an integration in
use, so a lookup reaching another organization's connection shows."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from kizuna.crm.integration.models import Connection, ConnectionState, Reconciliation
from kizuna.crm.models import Membership, Organization
from kizuna.testing.intake import new_connection

pytestmark = pytest.mark.django_db


def run_now(client: Client) -> list[str]:
    page = client.post(reverse("crm_survey_responses:reconcile"), follow=True)
    assert page.status_code == 200
    return [str(message) for message in page.context["messages"]]


def test_run_now_without_an_integration_says_it_is_not_set_up_and_queues_nothing(
    ada_client: Client, ada_membership: Membership, other_organization: Organization
):
    new_connection(other_organization)

    assert run_now(ada_client) == ["The Survey integration is not set up for this organization."]

    assert Reconciliation.objects.filter(kind="requested").count() == 0


def test_run_now_with_a_refused_key_asks_to_reconnect_first_and_queues_nothing(
    ada_client: Client, organization: Organization
):
    connection = new_connection(organization)
    Connection.objects.filter(pk=connection.pk).update(state=ConnectionState.NEEDS_RECONNECTION)

    assert run_now(ada_client) == [
        "Reconnect with the new SC key first: the Survey service refuses the stored one."
    ]

    assert Reconciliation.objects.filter(kind="requested").count() == 0
