"""The setup wizard against bad input and a failing Survey service: a Survey answering 500 or
hanging, a key regenerated between two steps, steps skipped or made up (issue 7, Tests)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from kizuna.crm.integration.client import Credentials
from kizuna.crm.integration.models import Connection
from kizuna.identity.models import User
from kizuna.survey.keys.services import regenerate_key
from kizuna.survey.models import AccountMember
from kizuna.survey.webhooks.models import WebhookEndpoint
from kizuna.testing.personas import client_for
from kizuna.testing.receiver import Answer, Receiver

pytestmark = pytest.mark.usefixtures("survey_service", "ada_membership")


def step(name: str) -> str:
    return f"/crm/integration/setup/{name}/"


@pytest.fixture
def browser(ada: User) -> Client:
    return client_for(ada)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers: a hanging Survey service."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(8)
        yield f"http://127.0.0.1:{listening.getsockname()[1]}"


def test_s4_a_survey_service_answering_500_is_said_and_nothing_saved(
    browser: Client, settings: Any, receiver: Receiver
) -> None:
    settings.SURVEY_URL = receiver.origin
    receiver.answer(Answer(status=500, body=b"<h1>Server Error (500)</h1>"))
    browser.post(step("method"), {"method": "other_account"})

    response = browser.post(step("credentials"), {"email": "ada@example.com", "key": "sck_x"})

    assert response.status_code == 422
    assert "The Survey service had an internal error" in response.content.decode()
    assert browser.get(step("portals"))["Location"] == step("credentials")
    assert not Connection.objects.exists()


def test_s4_a_hanging_survey_service_is_said_and_nothing_saved(
    browser: Client, settings: Any, silent_server: str
) -> None:
    settings.SURVEY_URL = silent_server
    settings.KIZUNA_SURVEY_TIMEOUT_SECONDS = 0.5
    browser.post(step("method"), {"method": "own_account"})

    response = browser.post(step("account"), {"action": "lookup"})

    assert response.status_code == 422
    assert "did not answer in time" in response.content.decode()
    assert not Connection.objects.exists()


def test_s4_a_key_regenerated_between_two_steps_is_said_and_nothing_enabled(
    browser: Client, ada_credentials: Credentials, ada_member: AccountMember, ada: User
) -> None:
    browser.post(step("method"), {"method": "other_account"})
    browser.post(step("credentials"), {"email": "ada@example.com", "key": ada_credentials.key})
    regenerate_key(member=ada_member, by=ada)

    portals = browser.get(step("portals"))

    assert portals.status_code == 502
    assert "was regenerated in Survey and no longer works" in portals.content.decode()
    assert not Connection.objects.exists()
    assert not WebhookEndpoint.objects.exists()


def test_s9_steps_cannot_be_skipped_or_made_up(browser: Client) -> None:
    browser.post(step("method"), {"method": "other_account"})

    skipped = browser.post(step("confirm"))
    made_up = browser.get(step("no-such-step"))
    missing = browser.post(step("credentials"), {"email": "not an address", "key": ""})

    assert skipped["Location"] == step("credentials")
    assert made_up.status_code == 404
    assert missing.status_code == 422
    assert not Connection.objects.exists()


def test_s1_charlie_sets_up_his_own_organization_only(
    charlie_membership: Any, charlie: User, ada_credentials: Credentials
) -> None:
    browser = client_for(charlie)
    browser.post(step("method"), {"method": "other_account"})
    browser.post(step("credentials"), {"email": "ada@example.com", "key": ada_credentials.key})
    browser.post(step("portals"), {"use_all": "on"})
    browser.post(step("users"), {})
    browser.post(step("confirm"))

    [connection] = Connection.objects.all()
    assert connection.organization == charlie_membership.organization
