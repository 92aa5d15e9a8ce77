"""Issue 9, Tests: schemathesis against both OpenAPI documents, as served, inside `make test`.

Every operation of the Survey API (/survey/api/v1/openapi.json) and of the CRM API
(/crm/api/v1/openapi.json) gets generated requests (valid and invalid bodies, queries,
headers) with valid credentials, through the WSGI application in this process: none may
answer 5xx. Operations with a path id are called twice, with the generated id and with the
id of a real object, so the happy paths are reached too. Derandomized: the same examples
every run, a few seconds per operation (about a minute for both APIs on 2 cores).

Left out: POST /survey/api/v1/webhooks, whose generated URLs would be resolved in DNS and
later delivered to (the URL guard is tested in survey/webhooks/tests/test_url_guard.py
and test_url_fields.py here).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import override_settings
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings

from kizuna import contracts
from kizuna.crm.api.services import create_api_token
from kizuna.crm.models import Contact, Lead, Membership, Organization, Role
from kizuna.survey.keys.services import get_or_create_key
from kizuna.survey.models import AccountMember, Invitation, Survey
from kizuna.survey.services import create_account
from kizuna.survey.webhooks.models import WebhookEndpoint
from kizuna.testing.personas import make_user
from kizuna.wsgi import application

pytestmark = pytest.mark.django_db

EXAMPLES = hypothesis_settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # a failure is reported as found, not shrunk
    suppress_health_check=list(HealthCheck),
)
TRUST_TOKEN = "a-trust-token-of-the-fuzz-tests-0123456789"  # noqa: S105 - test-only


@dataclass(frozen=True)
class Tenant:
    """Credentials and real object ids, for the happy paths."""

    headers: dict[str, str]
    ids: dict[str, int]


@pytest.fixture
def survey_tenant(db: None) -> Tenant:
    owner = make_user("fuzz-survey@example.com", full_name="Fuzz Survey")
    account = create_account(name="Fuzz", owner=owner)
    survey = Survey.objects.create(portal=account.portals.get(), title="Fuzz", created_by=owner)
    Invitation.objects.create(survey=survey, recipient_reference="lead:1")
    endpoint = WebhookEndpoint.objects.create(
        account=account, url="https://93.184.215.14/hook", events=["response.completed"]
    )
    key = get_or_create_key(member=AccountMember.objects.get(account=account), by=owner)
    return Tenant(
        headers={
            "X-SC-Email": owner.email,
            "X-SC-Key": key.reveal(),
            "X-Kizuna-Trust": TRUST_TOKEN,
        },
        ids={"survey_id": survey.pk, "endpoint_id": endpoint.pk},
    )


@pytest.fixture
def crm_tenant(db: None) -> Tenant:
    owner = make_user("fuzz-crm@example.com", full_name="Fuzz CRM")
    organization = Organization.objects.create(name="Fuzz")
    Membership.objects.create(organization=organization, user=owner, role=Role.ADMINISTRATOR)
    lead = Lead.objects.create(organization=organization, family_name="Fuzz", created_by=owner)
    contact = Contact.objects.create(organization=organization, family_name="Fuzz")
    _token, secret = create_api_token(user=owner, organization=organization, name="fuzz")
    return Tenant(
        headers={"Authorization": f"Bearer {secret}"},
        ids={"lead_id": lead.pk, "contact_id": contact.pk},
    )


@pytest.fixture(autouse=True)
def _test_connection_kept_open() -> Iterator[None]:
    """What Django's test client does around each request: the WSGI application would
    otherwise close the database connection at the end of a request, and with it the
    test's transaction (PostgreSQL)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def served(name: str) -> Any:
    """The API's document as committed, which kizuna/contracts/tests/test_openapi.py proves
    is the one served, called through the WSGI application in this process."""
    schema = schemathesis.openapi.from_dict(contracts.openapi(name))
    schema.app = application
    return schema


def never_a_server_error(case: Any, tenant: Tenant) -> None:
    """Call `case` as generated, then with the tenant's real ids in its path; no 5xx."""
    cache.clear()  # throttles count generated failures too; they are not what is tested here
    variants = [dict(case.path_parameters or {})]
    if case.path_parameters:
        variants.append(
            {name: tenant.ids.get(name, value) for name, value in case.path_parameters.items()}
        )
    for path_parameters in variants:
        case.path_parameters = path_parameters
        response = case.call(headers={**(case.headers or {}), **tenant.headers})
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path} answered {response.status_code}:\n"
            f"{case.as_curl_command()}\n{response.text[:2000]}"
        )


survey_api = served("survey-v1")
crm_api = served("crm-v1")


@override_settings(KIZUNA_TRUST_TOKEN=TRUST_TOKEN)
@survey_api.exclude(method="POST", path="/survey/api/v1/webhooks").parametrize()
@EXAMPLES
def test_the_survey_api_never_answers_5xx(case: Any, survey_tenant: Tenant) -> None:
    never_a_server_error(case, survey_tenant)


@crm_api.parametrize()
@EXAMPLES
def test_the_crm_api_never_answers_5xx(case: Any, crm_tenant: Tenant) -> None:
    never_a_server_error(case, crm_tenant)
