"""`kizuna demo` leaves Ada's organization without the integration (a newcomer sees Get
started), with what the README's walkthrough of both methods needs: Ada's own Survey account
with two portals, Carol's account and SC key."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command

from kizuna.crm.integration import client
from kizuna.crm.integration.models import Connection
from kizuna.identity.models import User
from kizuna.survey.keys.services import get_or_create_key
from kizuna.survey.models import AccountMember
from kizuna.testing.personas import client_for

pytestmark = pytest.mark.usefixtures("survey_service")


def test_s2_the_demo_leaves_the_integration_not_set_up_and_both_methods_ready(
    db: Any,
) -> None:
    call_command("demo", quiet=True)
    ada = User.objects.get(email="ada@example.com")
    carol = AccountMember.objects.get(user__email="carol@example.com")

    page = client_for(ada).get("/crm/integration/settings/")
    own = client.accounts_for_email(email="ada@example.com")
    carols_key = get_or_create_key(member=carol).reveal()
    other = client.get_account(client.Credentials("carol@example.com", carols_key))

    assert not Connection.objects.exists()
    assert 'id="get-started"' in page.content.decode()
    assert not own.created
    assert [len(account.portals) for account in own.accounts] == [2]
    assert other.name == "Carol's Research"
