"""Portals: administrators create, rename and delete (only when empty) portals."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from kizuna.survey.models import Portal, Survey, SurveyAccount


def test_administrator_lists_portals_with_survey_counts(
    ada_client: Client, portal: Portal, survey: Survey
) -> None:
    response = ada_client.get(reverse("survey:portals"))
    assert response.status_code == 200
    assert [(row.name, row.survey_count) for row in response.context["rows"]] == [("My portal", 1)]


def test_the_portals_page_ends_with_the_form_for_a_new_one(
    ada_client: Client, portal: Portal
) -> None:
    html = ada_client.get(reverse("survey:portals")).content.decode()

    card = html[html.index('<form method="post" class="card narrow">') :]
    assert '<h2 class="card-title">New portal</h2>' in card
    assert 'name="name"' in card
    assert '<button type="submit" class="button primary">Create portal</button>' in card


def test_portals_page_as_member_is_403(bob_client: Client) -> None:
    assert bob_client.get(reverse("survey:portals")).status_code == 403


def test_portals_page_as_outsider_shows_only_their_portals(
    carol_client: Client, portal: Portal
) -> None:
    response = carol_client.get(reverse("survey:portals"))
    assert response.status_code == 200
    assert [row.pk for row in response.context["rows"]] != [portal.pk]
    assert len(response.context["rows"]) == 1


def test_portals_page_signed_out_redirects(anonymous_client: Client) -> None:
    assert anonymous_client.get(reverse("survey:portals")).status_code == 302


def test_administrator_creates_a_portal(ada_client: Client, account: SurveyAccount) -> None:
    response = ada_client.post(reverse("survey:portals"), {"name": "Events"})
    assert response.status_code == 302
    assert sorted(account.portals.values_list("name", flat=True)) == ["Events", "My portal"]


def test_a_portal_needs_a_name(ada_client: Client, account: SurveyAccount) -> None:
    response = ada_client.post(reverse("survey:portals"), {"name": "  "})
    assert response.status_code == 400
    assert account.portals.count() == 1


@pytest.mark.parametrize("persona", ["bob", "anonymous"])
def test_only_administrators_create_portals(
    request: pytest.FixtureRequest, persona: str, account: SurveyAccount
) -> None:
    client: Client = request.getfixturevalue(f"{persona}_client")
    response = client.post(reverse("survey:portals"), {"name": "Sneaky"})
    assert response.status_code in {302, 403}
    assert response.status_code == (403 if persona == "bob" else 302)
    assert not Portal.objects.filter(name="Sneaky").exists()


def test_administrator_renames_a_portal(ada_client: Client, portal: Portal) -> None:
    assert ada_client.get(reverse("survey:portal-rename", args=[portal.pk])).status_code == 200
    response = ada_client.post(
        reverse("survey:portal-rename", args=[portal.pk]), {"name": "顧客満足度"}
    )
    assert response.status_code == 302
    portal.refresh_from_db()
    assert portal.name == "顧客満足度"


@pytest.mark.parametrize(("persona", "status"), [("bob", 403), ("carol", 404), ("anonymous", 302)])
def test_only_the_accounts_administrators_rename_portals(
    request: pytest.FixtureRequest, persona: str, status: int, portal: Portal
) -> None:
    client: Client = request.getfixturevalue(f"{persona}_client")
    assert client.get(reverse("survey:portal-rename", args=[portal.pk])).status_code == status
    response = client.post(reverse("survey:portal-rename", args=[portal.pk]), {"name": "Hacked"})
    assert response.status_code == status
    portal.refresh_from_db()
    assert portal.name == "My portal"


def test_administrator_deletes_an_empty_portal(ada_client: Client, account: SurveyAccount) -> None:
    events = Portal.objects.create(account=account, name="Events")
    response = ada_client.post(reverse("survey:portal-delete", args=[events.pk]))
    assert response.status_code == 302
    assert not Portal.objects.filter(pk=events.pk).exists()


def test_a_portal_with_surveys_is_not_deleted(
    ada_client: Client, account: SurveyAccount, portal: Portal, survey: Survey
) -> None:
    Portal.objects.create(account=account, name="Events")
    response = ada_client.post(reverse("survey:portal-delete", args=[portal.pk]), follow=True)
    assert "This portal still has surveys" in response.content.decode()
    assert Portal.objects.filter(pk=portal.pk).exists()


def test_the_last_portal_is_not_deleted(ada_client: Client, portal: Portal) -> None:
    response = ada_client.post(reverse("survey:portal-delete", args=[portal.pk]), follow=True)
    assert "An account needs at least one portal." in response.content.decode()
    assert Portal.objects.filter(pk=portal.pk).exists()


@pytest.mark.parametrize(("persona", "status"), [("bob", 403), ("carol", 404), ("anonymous", 302)])
def test_only_the_accounts_administrators_delete_portals(
    request: pytest.FixtureRequest, persona: str, status: int, account: SurveyAccount
) -> None:
    events = Portal.objects.create(account=account, name="Events")
    client: Client = request.getfixturevalue(f"{persona}_client")
    assert client.post(reverse("survey:portal-delete", args=[events.pk])).status_code == status
    assert Portal.objects.filter(pk=events.pk).exists()


def test_a_portal_emptied_by_moving_its_surveys_can_be_deleted(
    ada_client: Client, account: SurveyAccount, portal: Portal, survey: Survey
) -> None:
    events = Portal.objects.create(account=account, name="Events")
    response = ada_client.post(
        reverse("survey:survey-edit", args=[survey.pk]),
        {"title": survey.title, "portal": events.pk, "language": "en", "is_open": "on"},
    )
    assert response.status_code == 302
    survey.refresh_from_db()
    assert survey.portal == events
    ada_client.post(reverse("survey:portal-delete", args=[portal.pk]))
    assert list(account.portals.values_list("name", flat=True)) == ["Events"]
