"""CRM core fixtures: the personas as memberships, and records (kizuna/crm/conftest.py
has the organizations, users and signed-in clients)."""

from __future__ import annotations

from typing import Any

import pytest

from kizuna.crm import services
from kizuna.crm.models import Contact, Lead, Membership, Organization


# Here the personas are their memberships (ada.user, ada.organization, bob.pk).
@pytest.fixture
def ada(ada_membership: Membership) -> Membership:
    return ada_membership


@pytest.fixture
def bob(bob_membership: Membership) -> Membership:
    return bob_membership


@pytest.fixture
def charlie(charlie_membership: Membership) -> Membership:
    return charlie_membership


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
