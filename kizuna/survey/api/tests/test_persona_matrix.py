"""Every route of the Survey REST API (/survey/api/v1/), for every caller: Ada (administrator
of the account, with her SC key), Bob (a plain member of it, with the key he got while he
was an administrator: only administrators have SC keys), Carol (administrator
of another account: objects of Ada's account are 404 to her, lists show her own account),
Charlie (a CRM-only user: no Survey account, so no SC key; he sends his email with a made-up
key), a caller without credentials, and the co-deployed CRM with the deployment's trust
token (which opens the internal route only).

MATRIX lists every operation of the OpenAPI document ("METHOD /path") and the API's other
URLs (the document, its docs page, the root): an operation that is not here fails
test_the_matrix_covers_every_survey_api_route, which says what to add. Effects are tested in
the per-route files.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from kizuna.survey.api.api import api
from kizuna.survey.models import AccountMember, MemberRole, Survey
from kizuna.survey.webhooks import services as webhook_services
from kizuna.testing.matrix import SURVEY_API_NAMESPACE, api_routes, coverage_problems
from kizuna.testing.survey import sc_headers

pytestmark = pytest.mark.django_db

CALLERS = ("ada", "bob", "carol", "charlie", "anonymous", "trusted")

Expected = dict[str, int]
# The account's own data, for its administrators only: a plain member's key is refused.
OWN: Expected = {
    "ada": 200, "bob": 403, "carol": 200, "charlie": 401, "anonymous": 401, "trusted": 401,
}  # fmt: skip
# An object of Ada's account.
ADAS: Expected = {**OWN, "carol": 404}
# The OpenAPI document and its docs page: public.
PUBLIC: Expected = dict.fromkeys(CALLERS, 200)

# "METHOD /path": (JSON body or None, {caller: status})
MATRIX: dict[str, tuple[dict[str, Any] | None, Expected]] = {
    "GET /survey/api/v1/account": (None, OWN),
    "GET /survey/api/v1/portals": (None, OWN),
    "GET /survey/api/v1/surveys": (None, OWN),
    "GET /survey/api/v1/members": (None, OWN),
    "POST /survey/api/v1/members": ({"emails": ["erin@example.com"]}, OWN),
    "POST /survey/api/v1/surveys/{survey_id}/invitations": (
        {"invitations": [{"recipient_reference": "lead:7"}]}, ADAS,
    ),
    "GET /survey/api/v1/invitations": (None, OWN),
    "GET /survey/api/v1/responses": (None, OWN),
    "GET /survey/api/v1/responses/deleted": (None, OWN),
    "GET /survey/api/v1/webhooks": (None, OWN),
    "POST /survey/api/v1/webhooks": (
        {"url": "https://93.184.215.14/other", "events": ["response.completed"]},
        {**OWN, "ada": 201, "carol": 201},
    ),
    "DELETE /survey/api/v1/webhooks/{endpoint_id}": (None, {**ADAS, "ada": 204}),
    "POST /survey/api/v1/webhooks/{endpoint_id}/retry-failed": (None, ADAS),
    "POST /survey/api/v1/webhooks/{endpoint_id}/resend": (
        {"since": "2026-01-01T00:00:00Z"}, ADAS,
    ),
    # The co-deployed CRM's "my own account" (S7): the trust token only.
    "POST /survey/api/v1/internal/accounts-for-email": (
        {"email": "ada@example.com"}, {**dict.fromkeys(CALLERS, 401), "trusted": 200},
    ),
    "GET /survey/api/v1/openapi.json": (None, PUBLIC),
    "GET /survey/api/v1/docs": (None, PUBLIC),
    # The root of the API is no resource (django-ninja's catch-all of the mount).
    "GET /survey/api/v1/": (None, dict.fromkeys(CALLERS, 404)),
}  # fmt: skip

HOW = (
    "the JSON body or None, and the status of ada, bob, carol, charlie, anonymous and "
    "trusted: a group such as OWN or ADAS defined above, or a dict of its own; a new "
    "{path parameter} gets its value in the `objects` fixture below"
)
LINE = '"{name}": (None, OWN),  # check each answer'


def test_the_matrix_covers_every_survey_api_route() -> None:
    problems = coverage_problems(
        served=api_routes(api, SURVEY_API_NAMESPACE), listed=MATRIX,
        module=__name__.replace(".", "/") + ".py", how=HOW, line=LINE,
    )  # fmt: skip
    assert not problems, "\n".join(problems)


def _key_kept_after_demotion(member: AccountMember) -> dict[str, Any]:
    """The SC key headers `member` got as an administrator, now that they are a plain member."""
    AccountMember.objects.filter(pk=member.pk).update(role=MemberRole.ADMINISTRATOR)
    member.refresh_from_db()
    headers = sc_headers(member)
    AccountMember.objects.filter(pk=member.pk).update(role=MemberRole.MEMBER)
    return headers


@pytest.fixture
def callers(
    ada_member: AccountMember, bob_member: AccountMember, carol_member: AccountMember, charlie: Any
) -> dict[str, dict[str, Any]]:
    return {
        "ada": sc_headers(ada_member),
        "bob": _key_kept_after_demotion(bob_member),
        "carol": sc_headers(carol_member),
        "charlie": {"HTTP_X_SC_EMAIL": charlie.email, "HTTP_X_SC_KEY": "sck_made-up"},
        "anonymous": {},
        "trusted": {"HTTP_X_KIZUNA_TRUST": settings.KIZUNA_TRUST_TOKEN},
    }


@pytest.fixture
def objects(survey: Survey, ada_member: AccountMember) -> dict[str, Any]:
    endpoint, _ = webhook_services.create_endpoint(
        account=ada_member.account,
        url="https://93.184.215.14/hook",
        events=["response.completed"],
        by=ada_member.user,
    )
    return {"survey_id": survey.pk, "endpoint_id": endpoint.pk}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", sorted(MATRIX))
def test_persona_matrix(
    callers: dict[str, dict[str, Any]],
    objects: dict[str, Any],
    route: str,
    caller: str,
) -> None:
    body, expected = MATRIX[route]
    method, path = route.split(" ", 1)
    response = Client().generic(
        method,
        path.format(**objects),
        json.dumps(body) if body is not None else "",
        content_type="application/json",
        **callers[caller],
    )
    assert response.status_code == expected[caller], response.content[:300]
