"""Every route of the CRM REST API (/crm/api/v1/), for every caller: Ada (administrator of
Kizuna Demo), Bob (standard user there), Charlie (administrator of Sato Trading: records of
Kizuna Demo are 404 to him, lists show his own organization), each with a token of their
organization, and a caller without a token.

MATRIX lists every operation of the OpenAPI document ("METHOD /path") and the API's other
URLs (the document, its docs page, the root): an operation that is not here fails
test_the_matrix_covers_every_crm_api_route, which says what to add. The records used belong
to Kizuna Demo and are owned by Ada. Effects are tested in the per-route files.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kizuna.crm import services
from kizuna.crm.api.api import api
from kizuna.crm.integration.models import Connection, ConnectionMethod, ConnectionState
from kizuna.crm.models import Membership
from kizuna.testing.crm_api import ApiClient
from kizuna.testing.matrix import CRM_API_NAMESPACE, api_routes, coverage_problems

pytestmark = pytest.mark.django_db

CALLERS = ("ada", "bob", "charlie", "anonymous")

Expected = dict[str, int]
# Lists and creation in the caller's own organization.
OWN: Expected = {"ada": 200, "bob": 200, "charlie": 200, "anonymous": 401}
CREATE: Expected = {"ada": 201, "bob": 201, "charlie": 201, "anonymous": 401}
# A record of Kizuna Demo.
RECORD: Expected = {"ada": 200, "bob": 200, "charlie": 404, "anonymous": 401}
# Deleting a record of Kizuna Demo owned by Ada: Membership.may_delete.
DELETE: Expected = {"ada": 204, "bob": 403, "charlie": 404, "anonymous": 401}
# The OpenAPI document and its docs page: public.
PUBLIC: Expected = {"ada": 200, "bob": 200, "charlie": 200, "anonymous": 200}

NEW = {"family_name": "Yamada"}
CHANGE = {"company": "Sakura Foods"}

# "METHOD /path": (body, {caller: status})
MATRIX: dict[str, tuple[dict[str, Any] | None, Expected]] = {
    "GET /crm/api/v1/leads": (None, OWN),
    "POST /crm/api/v1/leads": (NEW, CREATE),
    "GET /crm/api/v1/leads/{lead_id}": (None, RECORD),
    "PATCH /crm/api/v1/leads/{lead_id}": (CHANGE, RECORD),
    "DELETE /crm/api/v1/leads/{lead_id}": (None, DELETE),
    "GET /crm/api/v1/contacts": (None, OWN),
    "POST /crm/api/v1/contacts": (NEW, CREATE),
    "GET /crm/api/v1/contacts/{contact_id}": (None, RECORD),
    "PATCH /crm/api/v1/contacts/{contact_id}": (CHANGE, RECORD),
    "DELETE /crm/api/v1/contacts/{contact_id}": (None, DELETE),
    # A record's survey responses (E1): Kizuna Demo's integration needs reconnecting (K2).
    "GET /crm/api/v1/leads/{lead_id}/survey-responses": (None, RECORD),
    "GET /crm/api/v1/contacts/{contact_id}/survey-responses": (None, RECORD),
    "GET /crm/api/v1/openapi.json": (None, PUBLIC),
    "GET /crm/api/v1/docs": (None, PUBLIC),
    # The root of the API is no resource (django-ninja's catch-all of the mount).
    "GET /crm/api/v1/": (None, dict.fromkeys(CALLERS, 404)),
}

HOW = (
    "the JSON body or None, and the status of ada, bob, charlie and anonymous: a group such "
    "as OWN, RECORD, DELETE defined above, or a dict of its own; a new {path parameter} gets "
    "its value in the `objects` fixture below"
)
LINE = '"{name}": (None, RECORD),  # check each answer'


def test_the_matrix_covers_every_crm_api_route() -> None:
    problems = coverage_problems(
        served=api_routes(api, CRM_API_NAMESPACE), listed=MATRIX,
        module=__name__.replace(".", "/") + ".py", how=HOW, line=LINE,
    )  # fmt: skip
    assert not problems, "\n".join(problems)


@pytest.fixture
def callers(
    ada_api: ApiClient, bob_api: ApiClient, charlie_api: ApiClient, anonymous_api: ApiClient
) -> dict[str, ApiClient]:
    return {"ada": ada_api, "bob": bob_api, "charlie": charlie_api, "anonymous": anonymous_api}


@pytest.fixture
def objects(ada_membership: Membership) -> dict[str, Any]:
    organization, ada = ada_membership.organization, ada_membership.user
    lead = services.create_lead(
        organization=organization, by=ada, values={"family_name": "Sato", "owner": ada}
    )
    contact = services.create_contact(
        organization=organization, by=ada, values={"family_name": "Suzuki", "owner": ada}
    )
    Connection.objects.create(
        organization=organization, method=ConnectionMethod.OTHER_ACCOUNT,
        survey_account_id=1, survey_account_name="Ada's Surveys", sc_email=ada.email,
        sc_key_encrypted="", enabled_by=ada, state=ConnectionState.NEEDS_RECONNECTION,
    )  # fmt: skip
    return {"lead_id": lead.pk, "contact_id": contact.pk}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", sorted(MATRIX))
def test_persona_matrix(
    callers: dict[str, ApiClient], objects: dict[str, Any], route: str, caller: str
) -> None:
    body, expected = MATRIX[route]
    method, path = route.split(" ", 1)
    api_client = callers[caller]
    response = api_client.client.generic(
        method,
        path.format(**objects),
        json.dumps(body) if body is not None else "",
        content_type="application/json",
        headers=api_client.headers,
    )
    assert response.status_code == expected[caller], response.content[:300]
