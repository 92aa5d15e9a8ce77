"""Import fixtures (the personas are in kizuna/crm/conftest.py)."""

from __future__ import annotations

import pytest

from kizuna.crm.imports.models import ImportJob, ImportStatus
from kizuna.crm.models import Membership, Organization
from kizuna.identity.models import User


@pytest.fixture
def running_job(organization: Organization, ada: User, ada_membership: Membership) -> ImportJob:
    """Ada's import of a 4,000-row file in the worker, a quarter done."""
    return ImportJob.objects.create(
        organization=organization,
        created_by=ada,
        module="leads",
        filename="big.csv",
        encoding="utf-8",
        content="x",
        row_count=4000,
        processed=1000,
        status=ImportStatus.RUNNING,
    )
