"""CRM core fixtures: records (the personas are in kizuna/testing/)."""

from __future__ import annotations

from typing import Any

import pytest

from kizuna.crm import services
from kizuna.crm.models import Contact, Lead, Membership, Organization
from kizuna.identity.models import User


def make_lead(organization: Organization, by: Any, **values: Any) -> Lead:
    values.setdefault("family_name", "Tanaka")
    return services.create_lead(organization=organization, by=by, values=values)


def make_contact(organization: Organization, by: Any, **values: Any) -> Contact:
    values.setdefault("family_name", "Suzuki")
    return services.create_contact(organization=organization, by=by, values=values)


@pytest.fixture
def lead(organization: Organization, ada: User, ada_membership: Membership) -> Lead:
    return make_lead(
        organization,
        ada,
        family_name="佐藤",
        given_name="花子",
        company="Sakura Foods",
        email="hanako@sakura.example",
        owner=ada,
    )


@pytest.fixture
def contact(organization: Organization, ada: User, ada_membership: Membership) -> Contact:
    return make_contact(
        organization,
        ada,
        family_name="Lovelace",
        given_name="Grace",
        company="Analytical Engines",
        email="grace@engines.example",
    )
