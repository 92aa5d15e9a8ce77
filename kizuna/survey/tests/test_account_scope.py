"""Survey's twin of kizuna/crm/tests/test_organization_scope.py (survey/access.py, issue 14):
each page acts on the row its address names, and an invitation is answered only by the
person it was sent to while it lasts. Two portals and several invitations are in the
database, so that a lookup that lost its id or a filter shows.
"""

from __future__ import annotations

import datetime

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kizuna.identity.models import User
from kizuna.survey.models import MemberInvitation, MemberRole, Portal, SurveyAccount
from kizuna.survey.services import create_account, create_portal
from kizuna.testing.personas import client_for

pytestmark = pytest.mark.django_db


def test_renaming_a_portal_renames_that_portal_only(
    ada_client: Client, ada: User, account: SurveyAccount, carol_account: SurveyAccount
):
    events = create_portal(account=account, name="Events", by=ada)
    first = account.portals.exclude(pk=events.pk).get()
    carols = carol_account.portals.get()

    page = ada_client.post(reverse("survey:portal-rename", args=[events.pk]), {"name": "Fairs"})

    assert page.status_code == 302
    assert dict(Portal.objects.values_list("pk", "name")) == {
        first.pk: first.name,
        events.pk: "Fairs",
        carols.pk: carols.name,
    }


def invitation(account: SurveyAccount, email: str, *, days: float = 7) -> MemberInvitation:
    return MemberInvitation.objects.create(
        account=account,
        email=email,
        role=MemberRole.MEMBER,
        token_hash=MemberInvitation.hash(f"{account.pk}-{email}"),
        expires_at=timezone.now() + datetime.timedelta(days=days),
    )


def test_an_invited_person_answers_his_own_pending_invitations_only(
    bob: User, carol: User, account: SurveyAccount, carol_account: SurveyAccount
):
    """Bob is invited to three accounts (to one of them his invitation has expired); someone
    else to Ada's."""

    to_ada = invitation(account, bob.email)
    to_carol = invitation(carol_account, bob.email)
    someone_elses = invitation(account, "someone@example.com")
    third = create_account(name="Third Account", owner=carol)
    expired = invitation(third, bob.email, days=-1)
    client = client_for(bob)

    other = client.post(reverse("survey:invitation-decline", args=[someone_elses.pk]))
    gone = client.post(reverse("survey:invitation-decline", args=[expired.pk]))
    own = client.post(reverse("survey:invitation-decline", args=[to_carol.pk]))

    assert (other.status_code, gone.status_code, own.status_code) == (404, 404, 302)
    assert sorted(MemberInvitation.objects.values_list("pk", flat=True)) == sorted(
        [to_ada.pk, someone_elses.pk, expired.pk]
    )
