"""The CRM side of the personas (kizuna/testing/personas.py): the organizations and memberships."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from kizuna.crm.models import Membership, Organization
    from kizuna.identity.models import User


@pytest.fixture
def organization(db: None) -> Organization:
    from kizuna.crm.models import Organization

    return Organization.objects.create(name="Kizuna Demo")


@pytest.fixture
def other_organization(db: None) -> Organization:
    from kizuna.crm.models import Organization

    return Organization.objects.create(name="Sato Trading")


@pytest.fixture
def ada_membership(ada: User, organization: Organization) -> Membership:
    """Ada administers `organization`."""
    from kizuna.crm.models import Membership, Role

    return Membership.objects.create(organization=organization, user=ada, role=Role.ADMINISTRATOR)


@pytest.fixture
def bob_membership(bob: User, organization: Organization) -> Membership:
    """Bob is a standard user of `organization`."""
    from kizuna.crm.models import Membership, Role

    return Membership.objects.create(organization=organization, user=bob, role=Role.STANDARD)


@pytest.fixture
def charlie_membership(charlie: User, other_organization: Organization) -> Membership:
    """Charlie administers `other_organization`."""
    from kizuna.crm.models import Membership, Role

    return Membership.objects.create(
        organization=other_organization, user=charlie, role=Role.ADMINISTRATOR
    )
