"""CRM and Survey as two processes on two ports with two databases (issue 7, Tests).

The Survey service runs as `kizuna serve` with KIZUNA_SERVICES=survey, its own SQLite
database and secret key, on a port of its own; the CRM is this test's live_server on the
test database (which, as the test settings load both services, could serve Survey pages
too: only the Survey process is ever called). They share only the trust token, as the
README's recipe says. Setup through the CRM's pages works with both methods, the webhook
endpoint lands in the Survey's database pointing at the CRM's intake URL, and the Survey's
data never appears in the CRM's.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kizuna.crm.integration import client
from kizuna.crm.integration.client import Credentials
from kizuna.crm.integration.models import Connection, ConnectionMethod, ConnectionState
from kizuna.crm.models import Organization
from kizuna.identity.models import User
from kizuna.survey.models import SurveyAccount
from kizuna.testing.personas import client_for
from kizuna.testing.processes import (
    descendants,
    free_port,
    is_running,
    kizuna_env,
    start_kizuna,
    wait_for,
)

TRUST_TOKEN = "a-trust-token-shared-by-the-two-services-0123456789"  # noqa: S105 - test-only
SURVEY_SECRET_KEY = "the-survey-service-has-a-secret-key-of-its-own-0123456789-xyz"  # noqa: S105


@pytest.fixture
def survey_process(tmp_path: Path, live_server: Any) -> Iterator[str]:
    """A Survey-only `kizuna serve` with its own database; yields its URL."""
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    env = kizuna_env(
        tmp_path,
        KIZUNA_SERVICES="survey",
        DATABASE_URL=f"sqlite:///{tmp_path / 'survey.sqlite3'}",
        KIZUNA_SECRET_KEY=SURVEY_SECRET_KEY,
        KIZUNA_BASE_URL=origin,
        KIZUNA_TRUST_TOKEN=TRUST_TOKEN,
        KIZUNA_WEBHOOK_ALLOWED_ORIGINS=live_server.url,
    )
    for command in (["migrate", "-v0"], ["createcachetable"]):  # as the README says
        subprocess.run([sys.executable, "-m", "kizuna", *command], env=env, check=True)
    log = tmp_path / "survey.log"
    process = start_kizuna(
        ["serve", "--no-worker", "--bind", f"127.0.0.1:{port}", "--processes", "1"], env, log
    )
    try:
        wait_for(
            lambda: f"Kizuna is running at {origin}" in log.read_text(errors="replace"),
            timeout=60,
            message="the Survey service printed its URL",
        )
        yield origin
    finally:
        for pid in [process.pid, *descendants(process.pid)]:
            if is_running(pid):
                subprocess.run(["kill", "-9", str(pid)], check=False)
        process.wait()
        print(log.read_text(errors="replace"))


@pytest.fixture
def crm(survey_process: str, live_server: Any, settings: Any) -> str:
    settings.SURVEY_URL = survey_process
    settings.KIZUNA_BASE_URL = live_server.url
    settings.KIZUNA_TRUST_TOKEN = TRUST_TOKEN
    return str(live_server.url)


def step(name: str) -> str:
    return f"/crm/integration/setup/{name}/"


@pytest.mark.usefixtures("ada_membership")
def test_s4_s9_another_users_account_across_two_processes_and_databases(
    crm: str, survey_process: str, ada: User, organization: Organization
) -> None:
    # Carol gets a Survey account in the Survey's own database (trust token: S7's route).
    carol = client.accounts_for_email(email="carol@example.com", account_name="Carol's Research")
    [account] = carol.accounts
    browser = client_for(ada)

    browser.post(step("method"), {"method": "other_account"})
    wrong = browser.post(step("credentials"), {"email": "carol@example.com", "key": "sck_nope"})
    browser.post(step("credentials"), {"email": "carol@example.com", "key": account.sc_key})
    browser.post(step("portals"), {"use_all": "on"})
    browser.post(step("users"), {})
    done = browser.post(step("confirm"))

    assert wrong.status_code == 422
    assert "This SC key is not the key of this email address" in wrong.content.decode()
    assert done.status_code == 302
    connection = Connection.objects.get(organization=organization)
    assert connection.state == ConnectionState.ENABLED
    assert connection.survey_account_id == account.id
    credentials = Credentials("carol@example.com", account.sc_key)
    [endpoint] = client.list_webhook_endpoints(credentials)
    assert endpoint.id == connection.webhook_endpoint_id
    assert endpoint.url == f"{crm}/crm/integration/intake/{connection.intake_token}/"
    # The Survey's rows live in its own database only.
    assert not SurveyAccount.objects.exists()
    # The Survey process serves no CRM (the test's live_server, the CRM, serves both).
    assert httpx.get(f"{survey_process}/crm/", timeout=10).status_code == 404


@pytest.mark.usefixtures("ada_membership")
def test_s7_my_own_account_across_two_processes_and_databases(
    crm: str, ada: User, organization: Organization
) -> None:
    browser = client_for(ada)

    browser.post(step("method"), {"method": "own_account"})
    found = browser.post(step("account"), {"action": "lookup"})
    browser.post(step("portals"), {"use_all": "on"})
    browser.post(step("users"), {"who": "all"})
    browser.post(step("confirm"))

    assert found["Location"] == step("portals")
    connection = Connection.objects.get(organization=organization)
    assert connection.method == ConnectionMethod.OWN_ACCOUNT
    assert connection.sc_email == "ada@example.com"
    assert client.get_account(connection.credentials()).id == connection.survey_account_id
    assert not SurveyAccount.objects.exists()
