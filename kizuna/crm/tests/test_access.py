"""crm/access.py, the twin of survey/access.py: the current organization lives in the session."""

from __future__ import annotations

from django.conf import settings

from kizuna.crm.access import SESSION_KEY
from kizuna.crm.models import Membership, Organization, Role
from kizuna.testing.personas import client_for


def test_the_current_organization_is_written_to_the_session_only_when_it_changes(
    ada_membership: Membership, organization: Organization, other_organization: Organization
):
    Membership.objects.create(
        organization=other_organization, user=ada_membership.user, role=Role.STANDARD
    )
    client = client_for(ada_membership.user)

    first = client.get("/crm/")
    assert first.status_code == 200
    assert settings.SESSION_COOKIE_NAME in first.cookies  # the first organization was chosen
    assert client.session[SESSION_KEY] == organization.pk

    again = client.get("/crm/")
    assert again.status_code == 200
    assert settings.SESSION_COOKIE_NAME not in again.cookies  # nothing changed, nothing saved

    client.post("/crm/organizations/switch/", {"organization": other_organization.pk})
    assert client.session[SESSION_KEY] == other_organization.pk
    client.get("/crm/")  # the switch's success message is shown (and taken from the session)
    after = client.get("/crm/")
    assert after.status_code == 200
    assert settings.SESSION_COOKIE_NAME not in after.cookies
