"""The connections the intake's tests record on: Ada's organization's, and Charlie's
connected to the same Survey account, so that a response kept on the wrong one shows."""

from __future__ import annotations

import pytest

from kizuna.crm.integration.models import Connection
from kizuna.crm.models import Organization
from kizuna.testing.intake import new_connection


@pytest.fixture
def connection(organization: Organization) -> Connection:
    return new_connection(organization)


@pytest.fixture
def other_connection(other_organization: Organization) -> Connection:
    """Charlie's organization, connected to the same Survey account."""
    return new_connection(other_organization)
