"""CRM API clients of the personas (kizuna/testing/personas.py): each calls the API with a
token of its own organization."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from django.test import Client

if TYPE_CHECKING:
    from kizuna.crm.models import Membership, Organization
    from kizuna.identity.models import User


class ApiClient:
    """Calls the CRM API with a bearer token (or none)."""

    def __init__(self, token: str | None) -> None:
        self.client = Client()
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(API + path, params, headers=self.headers)

    def post(self, path: str, body: Any) -> Any:
        return self.client.post(
            API + path, json.dumps(body), content_type="application/json", headers=self.headers
        )

    def patch(self, path: str, body: Any) -> Any:
        return self.client.patch(
            API + path, json.dumps(body), content_type="application/json", headers=self.headers
        )

    def delete(self, path: str) -> Any:
        return self.client.delete(API + path, headers=self.headers)

    def url(self, url: str) -> Any:
        return self.client.get(url, headers=self.headers)


API = "/crm/api/v1"


def token_for(user: User, organization: Organization) -> str:
    from kizuna.crm.api.services import create_api_token

    return create_api_token(user=user, organization=organization, name="test")[1]


@pytest.fixture
def ada_api(ada_membership: Membership) -> ApiClient:
    return ApiClient(token_for(ada_membership.user, ada_membership.organization))


@pytest.fixture
def bob_api(bob_membership: Membership) -> ApiClient:
    return ApiClient(token_for(bob_membership.user, bob_membership.organization))


@pytest.fixture
def charlie_api(charlie_membership: Membership) -> ApiClient:
    return ApiClient(token_for(charlie_membership.user, charlie_membership.organization))


@pytest.fixture
def anonymous_api(db: None) -> ApiClient:
    return ApiClient(None)
