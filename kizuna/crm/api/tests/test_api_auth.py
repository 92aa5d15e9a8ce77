"""Who may call the API: a valid token of an active member, nobody else."""

from __future__ import annotations

from typing import Any

import pytest

from kizuna.crm.api.models import ApiToken
from kizuna.crm.api.services import revoke_api_token
from kizuna.crm.models import Lead, Membership, Organization
from kizuna.identity.models import User
from kizuna.testing.crm_api import ApiClient, token_for

MISSING_TOKEN = {
    "error": {
        "code": "missing_credentials",
        "message": "Send an API token: Authorization: Bearer <token>.",
        "fields": {},
    }
}
INVALID_TOKEN = {
    "error": {
        "code": "invalid_token",
        "message": "Send a valid API token: Authorization: Bearer <token>. Revoked tokens and "
        "tokens of former members do not work.",
        "fields": {},
    }
}
ROUTES = [
    ("get", "/leads"),
    ("post", "/leads"),
    ("get", "/leads/{id}"),
    ("patch", "/leads/{id}"),
    ("delete", "/leads/{id}"),
    ("get", "/contacts"),
    ("post", "/contacts"),
    ("get", "/contacts/{id}"),
    ("patch", "/contacts/{id}"),
    ("delete", "/contacts/{id}"),
]


def _call(api: ApiClient, method: str, path: str, record_id: int) -> Any:
    path = path.format(id=record_id)
    if method in ("post", "patch"):
        return getattr(api, method)(path, {"family_name": "Changed"})
    return getattr(api, method)(path)


@pytest.fixture
def lead(organization: Organization) -> Lead:
    return Lead.objects.create(organization=organization, family_name="Kept")


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_refuses_a_call_without_token(
    anonymous_api: ApiClient, lead: Lead, method: str, path: str
) -> None:
    response = _call(anonymous_api, method, path, lead.pk)
    assert response.status_code == 401
    assert response.json() == MISSING_TOKEN
    assert response["WWW-Authenticate"] == "Bearer"
    assert list(Lead.objects.values_list("family_name", flat=True)) == ["Kept"]


@pytest.mark.usefixtures("ada_membership")
@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_refuses_a_revoked_token(
    ada: User, organization: Organization, lead: Lead, method: str, path: str
) -> None:
    token = token_for(ada, organization)
    revoke_api_token(api_token=ApiToken.objects.get())
    response = _call(ApiClient(token), method, path, lead.pk)
    assert response.status_code == 401
    assert response.json() == INVALID_TOKEN
    assert response["WWW-Authenticate"] == "Bearer"
    assert list(Lead.objects.values_list("family_name", flat=True)) == ["Kept"]


@pytest.mark.usefixtures("bob_membership")
@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_refuses_the_token_of_an_inactive_member(
    bob: User, organization: Organization, lead: Lead, method: str, path: str
) -> None:
    token = token_for(bob, organization)
    Membership.objects.filter(user=bob).update(is_active=False)
    response = _call(ApiClient(token), method, path, lead.pk)
    assert response.status_code == 401
    assert response.json() == INVALID_TOKEN
    assert list(Lead.objects.values_list("family_name", flat=True)) == ["Kept"]


@pytest.mark.usefixtures("bob_membership")
def test_a_deactivated_user_or_a_made_up_token_is_refused(
    bob: User, organization: Organization
) -> None:
    token = token_for(bob, organization)
    assert ApiClient(token).get("/leads").status_code == 200
    bob.is_active = False
    bob.save(update_fields=["is_active"])
    assert ApiClient(token).get("/leads").json() == INVALID_TOKEN
    assert ApiClient("kzc_made-up").get("/leads").json() == INVALID_TOKEN
    response = ApiClient(None).client.get("/crm/api/v1/leads", headers={"Authorization": token})
    assert (response.status_code, response.json()) == (401, MISSING_TOKEN)


def test_a_token_notes_when_it_was_last_used(ada_api: ApiClient) -> None:
    assert ApiToken.objects.get().last_used_at is None
    ada_api.get("/leads")
    first = ApiToken.objects.get().last_used_at
    assert first is not None
    ada_api.get("/leads")
    assert ApiToken.objects.get().last_used_at == first  # not rewritten within the minute


def test_a_session_cookie_is_not_enough(ada_client: Any, lead: Lead) -> None:
    response = ada_client.get("/crm/api/v1/leads")
    assert response.status_code == 401
