"""CRM personas for the API and token page tests: Ada (administrator) and Bob (standard
member) of one organization, Charlie (administrator) of another."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.utils import translation

from kizuna.crm.api.services import create_api_token
from kizuna.crm.models import Membership, Organization, Role
from kizuna.identity.models import User
from kizuna.testing.personas import client_for


@pytest.fixture
def organization(db: None) -> Organization:
    return Organization.objects.create(name="Kizuna Demo")


@pytest.fixture
def other_organization(db: None) -> Organization:
    return Organization.objects.create(name="Other Co")


@pytest.fixture
def ada(ada_user: User, organization: Organization) -> User:
    Membership.objects.create(organization=organization, user=ada_user, role=Role.ADMINISTRATOR)
    return ada_user


@pytest.fixture
def bob(bob_user: User, organization: Organization) -> User:
    Membership.objects.create(organization=organization, user=bob_user, role=Role.STANDARD)
    return bob_user


@pytest.fixture
def charlie(charlie_user: User, other_organization: Organization) -> User:
    Membership.objects.create(
        organization=other_organization, user=charlie_user, role=Role.ADMINISTRATOR
    )
    return charlie_user


@pytest.fixture
def ada_client(ada: User) -> Client:
    return client_for(ada)


@pytest.fixture
def bob_client(bob: User) -> Client:
    return client_for(bob)


@pytest.fixture
def charlie_client(charlie: User) -> Client:
    return client_for(charlie)


@pytest.fixture(autouse=True)
def _english_outside_requests() -> Iterator[None]:
    """A request in Japanese leaves Japanese active in the thread; direct calls expect English."""
    with translation.override("en"):
        yield


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
    return create_api_token(user=user, organization=organization, name="test")[1]


@pytest.fixture
def ada_api(ada: User, organization: Organization) -> ApiClient:
    return ApiClient(token_for(ada, organization))


@pytest.fixture
def bob_api(bob: User, organization: Organization) -> ApiClient:
    return ApiClient(token_for(bob, organization))


@pytest.fixture
def charlie_api(charlie: User, other_organization: Organization) -> ApiClient:
    return ApiClient(token_for(charlie, other_organization))


@pytest.fixture
def anonymous_api(db: None) -> ApiClient:
    return ApiClient(None)
