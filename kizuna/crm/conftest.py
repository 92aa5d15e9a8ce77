"""CRM personas for every test under kizuna/crm: Ada administers "Kizuna Demo", Bob is
a standard user there, Charlie administers "Sato Trading". `ada`, `bob` and `charlie`
are the users (kizuna/crm/tests/conftest.py makes them the memberships there);
`*_membership` are their memberships and `*_client` signed-in clients."""

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
    return Organization.objects.create(name="Sato Trading")


@pytest.fixture
def ada_membership(ada_user: User, organization: Organization) -> Membership:
    return Membership.objects.create(
        organization=organization, user=ada_user, role=Role.ADMINISTRATOR
    )


@pytest.fixture
def bob_membership(bob_user: User, organization: Organization) -> Membership:
    return Membership.objects.create(organization=organization, user=bob_user, role=Role.STANDARD)


@pytest.fixture
def charlie_membership(charlie_user: User, other_organization: Organization) -> Membership:
    return Membership.objects.create(
        organization=other_organization, user=charlie_user, role=Role.ADMINISTRATOR
    )


@pytest.fixture
def ada(ada_membership: Membership) -> User:
    return ada_membership.user


@pytest.fixture
def bob(bob_membership: Membership) -> User:
    return bob_membership.user


@pytest.fixture
def charlie(charlie_membership: Membership) -> User:
    return charlie_membership.user


@pytest.fixture
def ada_client(ada_membership: Membership) -> Client:
    return client_for(ada_membership.user)


@pytest.fixture
def bob_client(bob_membership: Membership) -> Client:
    return client_for(bob_membership.user)


@pytest.fixture
def charlie_client(charlie_membership: Membership) -> Client:
    return client_for(charlie_membership.user)


@pytest.fixture
def anonymous_client(db: None) -> Client:
    return Client()


@pytest.fixture
def personas(
    ada_client: Client, bob_client: Client, charlie_client: Client, anonymous_client: Client
) -> dict[str, Client]:
    return {
        "ada": ada_client,
        "bob": bob_client,
        "charlie": charlie_client,
        "anonymous": anonymous_client,
    }


@pytest.fixture(autouse=True)
def _english_outside_requests() -> Iterator[None]:
    """A request in Japanese leaves Japanese active in the thread; direct calls expect English."""
    with translation.override("en"):
        yield
