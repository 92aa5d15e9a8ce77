"""survey/access.py, the twin of crm/access.py: the current account lives in the session."""

from __future__ import annotations

from django.conf import settings

from kizuna.identity.models import User
from kizuna.survey.access import SESSION_KEY
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
