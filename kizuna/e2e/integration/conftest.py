"""Both services in one test, talking over real HTTP: the Survey service is served by
pytest-django's live_server and the CRM's client calls it at SURVEY_URL = live_server.url,
as a CRM deployed apart would. The Survey side is set up with its own services; the CRM
side is driven through kizuna.crm.integration only.

Personas (kizuna/testing/personas.py): Ada administers the CRM organization "Kizuna Demo"
(Bob is a standard user there) and owns the Survey account "Ada's Surveys" (`account`, here
with a second portal); Carol owns another Survey account; Charlie administers another CRM
organization.

The fixtures every module of this folder shares live here (`connection`, `smtp`,
`questions`, `lead`); helpers to call are in respond.py (answering) and mailing.py (sending).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import translation

from kizuna.crm.integration.client import Credentials
from kizuna.crm.integration.models import Connection
from kizuna.crm.integration.sending import hooks as sending_hooks
from kizuna.crm.mail import transport
from kizuna.crm.models import Lead, Membership, Organization
from kizuna.e2e.integration.respond import add_questions, enable
from kizuna.identity.models import User
from kizuna.survey.keys.services import get_or_create_key
from kizuna.survey.models import AccountMember, Portal, Question, Survey, SurveyAccount
from kizuna.survey.services import create_portal
from kizuna.testing.smtp import MailServer, smtp_settings


@pytest.fixture
def survey_service(live_server: Any, settings: Any) -> Iterator[str]:
    """The Survey service at a real HTTP address, and the CRM pointed at it."""
    settings.SURVEY_URL = live_server.url
    settings.KIZUNA_BASE_URL = live_server.url  # the intake URL the Survey service calls
    settings.KIZUNA_WEBHOOK_ALLOWED_ORIGINS = (live_server.url,)
    settings.KIZUNA_SURVEY_TIMEOUT_SECONDS = 10.0
    yield live_server.url


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    with translation.override("en"):
        yield


@pytest.fixture
def ada_account(account: SurveyAccount, ada: User) -> SurveyAccount:
    """Ada's `account` with a second portal, "Events"."""
    create_portal(account=account, name="Events", by=ada)
    return account


@pytest.fixture
def ada_portals(ada_account: SurveyAccount) -> list[Portal]:
    return list(ada_account.portals.order_by("name", "id"))


@pytest.fixture
def ada_credentials(ada_account: SurveyAccount, ada_member: AccountMember) -> Credentials:
    key = get_or_create_key(member=ada_member, by=ada_member.user).reveal()
    return Credentials(email="ada@example.com", key=key)


@pytest.fixture
def ada_survey(ada_portals: list[Portal], ada: User) -> Survey:
    return Survey.objects.create(
        portal=ada_portals[0], title="Customer satisfaction", language="en", created_by=ada
    )


@pytest.fixture
def carol_credentials(carol_member: AccountMember) -> Credentials:
    key = get_or_create_key(member=carol_member).reveal()
    return Credentials(email="carol@example.com", key=key)


@pytest.fixture(autouse=True)
def _registered() -> None:
    # Tests of CRM mail replace the "survey" namespace with their own and remove it.
    sending_hooks.register()


@pytest.fixture
def smtp(mail_server: tuple[MailServer, int]) -> Iterator[MailServer]:
    """Real SMTP (aiosmtpd on loopback) for CRM mail."""
    server, port = mail_server
    # The worker keeps its SMTP connection between messages: not across tests.
    transport.reset()
    try:
        with smtp_settings(port):
            yield server
    finally:
        transport.reset()


@pytest.fixture
def connection(
    organization: Organization,
    ada: User,
    ada_membership: Membership,
    ada_credentials: Credentials,
) -> Connection:
    """Ada's organization connected to her Survey account, all portals in use."""
    return enable(organization, ada, ada_credentials)


@pytest.fixture
def questions(ada_survey: Survey) -> dict[str, Question]:
    return add_questions(ada_survey)


@pytest.fixture
def lead(organization: Organization) -> Lead:
    return Lead.objects.create(
        organization=organization, family_name="Yamada", given_name="Hana", email="hana@example.com"
    )
