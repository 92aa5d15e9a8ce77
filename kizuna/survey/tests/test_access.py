"""survey/access.py, the twin of crm/access.py: the current account lives in the session."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from kizuna.identity.models import User
from kizuna.survey.access import SESSION_KEY, current_membership, memberships_of, switch_account
from kizuna.survey.models import AccountMember, MemberRole, SurveyAccount
from kizuna.testing.personas import client_for


def test_the_current_account_is_written_to_the_session_only_when_it_changes(
    account: SurveyAccount, carol_account: SurveyAccount, ada: User
):
    AccountMember.objects.create(account=carol_account, user=ada, role=MemberRole.MEMBER)
    client = client_for(ada)

    first = client.get("/survey/")
    assert first.status_code == 200
    assert settings.SESSION_COOKIE_NAME in first.cookies  # the first account was chosen
    assert client.session[SESSION_KEY] == account.pk

    again = client.get("/survey/")
    assert again.status_code == 200
    assert settings.SESSION_COOKIE_NAME not in again.cookies  # nothing changed, nothing saved

    client.post("/survey/accounts/switch/", {"account": carol_account.pk})
    assert client.session[SESSION_KEY] == carol_account.pk
    after = client.get("/survey/")
    assert after.context["member"].account_id == carol_account.pk
    assert settings.SESSION_COOKIE_NAME not in after.cookies


def test_an_account_of_which_the_user_is_no_longer_a_member_is_replaced_in_the_session(
    account: SurveyAccount, carol_account: SurveyAccount, ada: User
):
    carols = AccountMember.objects.create(account=carol_account, user=ada, role=MemberRole.MEMBER)
    client = client_for(ada)
    client.post("/survey/accounts/switch/", {"account": carol_account.pk})
    carols.delete()

    response = client.get("/survey/")

    assert response.context["member"].account_id == account.pk
    assert client.session[SESSION_KEY] == account.pk


def _membership_reads(queries: CaptureQueriesContext) -> int:
    """The reads of one user's memberships (not those of a members page)."""
    table = AccountMember._meta.db_table
    return sum(
        1
        for query in queries.captured_queries
        if query["sql"].startswith("SELECT")
        and f'FROM "{table}"' in query["sql"]
        and re.search(rf'"{table}"\."user_id" = [0-9]', query["sql"])
    )


@pytest.mark.parametrize(
    "url", ["/survey/", "/survey/portals/", "/survey/members/", "/survey/settings/sc-key/"]
)
def test_a_page_reads_the_users_memberships_once_for_the_account_and_its_switcher(
    url: str, account: SurveyAccount, carol_account: SurveyAccount, ada: User
):
    AccountMember.objects.create(account=carol_account, user=ada, role=MemberRole.MEMBER)
    client = client_for(ada)
    client.get("/survey/")  # the current account chosen and kept in the session

    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)

    assert response.status_code == 200
    assert _membership_reads(queries) == 1
    page = response.content.decode()
    switcher = page[page.index('<form class="survey-account-switch"') :]
    switcher = switcher[: switcher.index("</form>")]
    assert f'<option value="{account.pk}" selected>' in switcher
    assert f'<option value="{carol_account.pk}">' in switcher


def test_switching_to_an_account_joined_after_the_memberships_were_read_finds_it(
    rf: RequestFactory, account: SurveyAccount, carol_account: SurveyAccount, ada: User
):
    request = rf.get("/survey/")
    request.user = ada
    request.session = SessionStore()
    assert [m.account_id for m in memberships_of(request)] == [account.pk]
    AccountMember.objects.create(account=carol_account, user=ada, role=MemberRole.MEMBER)

    switched = switch_account(request, carol_account.pk)

    assert switched.account_id == carol_account.pk
    assert current_membership(request) == switched
    assert request.session[SESSION_KEY] == carol_account.pk
    assert {m.account_id for m in memberships_of(request)} == {account.pk, carol_account.pk}
