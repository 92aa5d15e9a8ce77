"""crm/access.py, the twin of survey/access.py: the current organization lives in the session."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.http import Http404
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from kizuna.crm.access import SESSION_KEY, current_membership, memberships_of, switch_organization
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


def _membership_reads(queries: CaptureQueriesContext) -> int:
    """The reads of one user's memberships (not those of a members page)."""
    table = Membership._meta.db_table
    return sum(
        1
        for query in queries.captured_queries
        if query["sql"].startswith("SELECT")
        and f'FROM "{table}"' in query["sql"]
        and re.search(rf'"{table}"\."user_id" = [0-9]', query["sql"])
    )


@pytest.mark.parametrize("url", ["/crm/", "/crm/leads/", "/crm/contacts/", "/crm/settings/"])
def test_a_page_reads_the_users_memberships_once_for_the_organization_and_its_switcher(
    url: str,
    ada_membership: Membership,
    organization: Organization,
    other_organization: Organization,
):
    Membership.objects.create(
        organization=other_organization, user=ada_membership.user, role=Role.STANDARD
    )
    client = client_for(ada_membership.user)
    client.get("/crm/")  # the current organization chosen and kept in the session

    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)

    assert response.status_code == 200
    assert _membership_reads(queries) == 1
    page = response.content.decode()
    switcher = page[page.index('<form class="organization-switcher"') :]
    switcher = switcher[: switcher.index("</form>")]
    assert f'<option value="{organization.pk}" selected>' in switcher
    assert f'<option value="{other_organization.pk}">' in switcher


def test_switching_to_an_organization_joined_after_the_memberships_were_read_finds_it(
    rf: RequestFactory,
    ada_membership: Membership,
    organization: Organization,
    other_organization: Organization,
):
    request = rf.get("/crm/")
    request.user = ada_membership.user
    request.session = SessionStore()
    assert [m.organization_id for m in memberships_of(request)] == [organization.pk]
    Membership.objects.create(
        organization=other_organization, user=ada_membership.user, role=Role.STANDARD
    )

    switched = switch_organization(request, other_organization.pk)

    assert switched.organization_id == other_organization.pk
    assert current_membership(request) == switched
    assert request.session[SESSION_KEY] == other_organization.pk
    assert {m.organization_id for m in memberships_of(request)} == {
        organization.pk,
        other_organization.pk,
    }


@pytest.mark.django_db
def test_someone_not_signed_in_has_no_memberships_and_no_current_organization():
    request = RequestFactory().get("/crm/")
    request.user = AnonymousUser()
    request.session = SessionStore()

    assert memberships_of(request) == []
    with CaptureQueriesContext(connection) as queries:
        assert memberships_of(request) == []  # kept on the request: read once
    assert len(queries) == 0
    with pytest.raises(Http404):
        current_membership(request)
