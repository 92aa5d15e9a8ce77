"""CRM personas: Ada administers "Kizuna Demo", Bob is a standard user there,
Charlie administers "Sato Trading". Each has a signed-in client."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from kizuna.crm import services
from kizuna.crm.models import Contact, Lead, Membership, Organization, Role
from kizuna.testing.personas import client_for


@pytest.fixture
def organization(db: None) -> Organization:
    return Organization.objects.create(name="Kizuna Demo")


@pytest.fixture
def other_organization(db: None) -> Organization:
    return Organization.objects.create(name="Sato Trading")


@pytest.fixture
def ada(ada_user: Any, organization: Organization) -> Membership:
    return Membership.objects.create(
        organization=organization, user=ada_user, role=Role.ADMINISTRATOR
    )


@pytest.fixture
def bob(bob_user: Any, organization: Organization) -> Membership:
    return Membership.objects.create(organization=organization, user=bob_user, role=Role.STANDARD)


@pytest.fixture
def charlie(charlie_user: Any, other_organization: Organization) -> Membership:
    return Membership.objects.create(
        organization=other_organization, user=charlie_user, role=Role.ADMINISTRATOR
    )


@pytest.fixture
def ada_client(ada: Membership) -> Client:
    return client_for(ada.user)


@pytest.fixture
def bob_client(bob: Membership) -> Client:
    return client_for(bob.user)


@pytest.fixture
def charlie_client(charlie: Membership) -> Client:
    return client_for(charlie.user)


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


def make_lead(organization: Organization, by: Any, **values: Any) -> Lead:
    values.setdefault("family_name", "Tanaka")
    return services.create_lead(organization=organization, by=by, values=values)


def make_contact(organization: Organization, by: Any, **values: Any) -> Contact:
    values.setdefault("family_name", "Suzuki")
    return services.create_contact(organization=organization, by=by, values=values)


@pytest.fixture
def lead(organization: Organization, ada: Membership) -> Lead:
    return make_lead(
        organization,
        ada.user,
        family_name="佐藤",
        given_name="花子",
        company="Sakura Foods",
        email="hanako@sakura.example",
        owner=ada.user,
    )


@pytest.fixture
def contact(organization: Organization, ada: Membership) -> Contact:
    return make_contact(
        organization,
        ada.user,
        family_name="Lovelace",
        given_name="Grace",
        company="Analytical Engines",
        email="grace@engines.example",
    )
