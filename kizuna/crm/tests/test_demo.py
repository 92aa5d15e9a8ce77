"""`kizuna demo` for the CRM core: a living CRM for a newcomer, twice without harm."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management.base import OutputWrapper
from django.db import connection
from django.test.utils import CaptureQueriesContext

from kizuna.crm import demo
from kizuna.crm.models import Activity, ActivityKind, Contact, Lead, LeadStatus, Membership, Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def users(ada: Any, bob: Any, carol: Any, charlie: Any) -> dict[str, Any]:
    return {"ada": ada, "bob": bob, "carol": carol, "charlie": charlie}


def test_demo_loads_organizations_members_and_people_once(users: dict[str, Any]) -> None:
    out = io.StringIO()
    demo.load(users=users, stdout=OutputWrapper(out))
    assert set(Membership.objects.values_list("organization__name", "user__email", "role")) == {
        ("Kizuna Demo", "ada@example.com", Role.ADMINISTRATOR),
        ("Kizuna Demo", "bob@example.com", Role.STANDARD),
        ("Sato Trading", "charlie@example.com", Role.ADMINISTRATOR),
    }
    assert Lead.objects.filter(organization__name="Kizuna Demo").count() == 300
    # Eight qualified leads were converted: their contacts come on top of the 150.
    assert Contact.objects.filter(organization__name="Kizuna Demo").count() == 158
    assert Lead.objects.filter(organization__name="Sato Trading").count() == 60
    assert Lead.objects.filter(status=LeadStatus.CONVERTED).count() == 16
    demo_leads = Lead.objects.filter(organization__name="Kizuna Demo")
    assert demo_leads.filter(family_name__in=demo.JAPANESE_FAMILY).count() == 200
    assert demo_leads.filter(family_name__in=demo.ENGLISH_FAMILY).count() == 100
    assert Activity.objects.filter(kind=ActivityKind.CONVERTED).count() == 16
    assert "CRM: 540 demo leads and contacts" in out.getvalue()

    with CaptureQueriesContext(connection) as queries:
        demo.load(users=users, stdout=OutputWrapper(io.StringIO()))
    assert Lead.objects.count() == 360
    assert len(queries) < 20
