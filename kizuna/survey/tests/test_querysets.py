"""Tenant-scoped reads: `.of(account)` keeps one Survey account's rows, through any path."""

from __future__ import annotations

from kizuna.identity.models import User
from kizuna.survey.models import (
    AccountMember,
    Invitation,
    Portal,
    Response,
    Survey,
    SurveyAccount,
)


def test_of_keeps_the_rows_of_one_account_through_portal_and_survey(
    account: SurveyAccount,
    carol_account: SurveyAccount,
    portal: Portal,
    survey: Survey,
    ada: User,
):
    carols_portal = carol_account.portals.get()
    carols = Survey.objects.create(portal=carols_portal, title="Carol's", language="en")
    ours = Invitation.objects.create(survey=survey, recipient_reference="lead:1")
    Invitation.objects.create(survey=carols, recipient_reference="lead:1")
    answered = Response.objects.create(survey=survey, language="en")
    Response.objects.create(survey=carols, language="en")

    assert list(Portal.objects.of(account)) == [portal]
    assert list(Survey.objects.of(account)) == [survey]
    assert list(Survey.objects.of(carol_account.pk)) == [carols]
    assert list(Invitation.objects.of(account)) == [ours]
    assert list(Response.objects.of(account)) == [answered]
    assert [member.user for member in AccountMember.objects.of(account)] == [ada]
