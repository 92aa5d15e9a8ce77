"""CRM personas for the import and export tests: Ada (administrator) and Bob (standard
member) of one organization, Charlie (administrator) of another."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client
from django.utils import translation

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
