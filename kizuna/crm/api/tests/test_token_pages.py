"""The API tokens page (/crm/api-tokens/): create, show once, revoke."""

from __future__ import annotations

import hashlib

import pytest
from django.test import Client
from django.urls import reverse

from kizuna.crm.api.models import ApiToken
from kizuna.crm.models import Organization
from kizuna.identity.models import User
from kizuna.testing.crm_api import ApiClient, token_for

TOKENS = reverse("crm_api:tokens")


def _revoke_url(token: ApiToken) -> str:
    return reverse("crm_api:token-revoke", args=[token.pk])


@pytest.mark.usefixtures("ada_membership")
def test_signed_out_visitors_are_sent_to_sign_in(
    client: Client, ada: User, organization: Organization
) -> None:
    token_for(ada, organization)
    api_token = ApiToken.objects.get()
    for response in (
        client.get(TOKENS),
        client.post(TOKENS, {"name": "x"}),
        client.post(_revoke_url(api_token)),
    ):
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("identity:login"))
    assert ApiToken.objects.count() == 1
    assert ApiToken.objects.get().revoked_at is None


def test_a_user_without_organization_gets_404(user_client: Client) -> None:
    assert user_client.get(TOKENS).status_code == 404


@pytest.mark.parametrize("persona", ["ada", "bob", "charlie"])
def test_a_member_creates_a_token_shown_once_and_stored_hashed(
    persona: str, request: pytest.FixtureRequest
) -> None:
    user = request.getfixturevalue(persona)
    client = request.getfixturevalue(f"{persona}_client")
    response = client.post(TOKENS, {"name": "Nightly sync"})
    assert response.status_code == 302
    api_token = ApiToken.objects.get()
    page = client.get(TOKENS)
    token = page.context["new_token"]["token"]
    assert "no-store" in page["Cache-Control"]
    assert token.startswith("kzc_")
    assert token in page.content.decode()
    assert api_token.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in (api_token.name, api_token.prefix)
    assert (api_token.user, api_token.name, api_token.prefix) == (user, "Nightly sync", token[:10])
    assert api_token.organization == user.crm_memberships.get().organization
    # Shown once: the next visit no longer has it.
    again = client.get(TOKENS)
    assert again.context["new_token"] is None
    assert token not in again.content.decode()
    assert ApiClient(token).get("/leads").status_code == 200


def test_a_token_needs_a_name(ada_client: Client) -> None:
    response = ada_client.post(TOKENS, {"name": ""})
    assert response.status_code == 200
    assert response.context["form"].errors == {"name": ["This field is required."]}
    assert ApiToken.objects.count() == 0


def test_revoking_stops_the_token_at_once(
    ada_client: Client, ada: User, organization: Organization
) -> None:
    token = token_for(ada, organization)
    api_token = ApiToken.objects.get()
    response = ada_client.post(_revoke_url(api_token))
    assert response.status_code == 302
    api_token.refresh_from_db()
    assert api_token.revoked_at is not None
    assert ApiClient(token).get("/leads").status_code == 401
    assert ada_client.get(_revoke_url(api_token)).status_code == 405


@pytest.mark.usefixtures("ada_membership")
def test_bob_cannot_revoke_adas_token_and_does_not_see_it(
    bob_client: Client, ada: User, organization: Organization
) -> None:
    token_for(ada, organization)
    api_token = ApiToken.objects.get()
    assert bob_client.post(_revoke_url(api_token)).status_code == 404
    assert ApiToken.objects.get().revoked_at is None
    page = bob_client.get(TOKENS)
    assert list(page.context["tokens"]) == []
    assert list(page.context["other_tokens"]) == []


@pytest.mark.usefixtures("ada_membership")
def test_charlie_of_another_organization_cannot_revoke_adas_token(
    charlie_client: Client, ada: User, organization: Organization
) -> None:
    token_for(ada, organization)
    api_token = ApiToken.objects.get()
    assert charlie_client.post(_revoke_url(api_token)).status_code == 404
    assert ApiToken.objects.get().revoked_at is None


@pytest.mark.usefixtures("bob_membership")
def test_the_administrator_sees_and_revokes_other_members_tokens(
    ada_client: Client, bob: User, organization: Organization
) -> None:
    token = token_for(bob, organization)
    api_token = ApiToken.objects.get()
    page = ada_client.get(TOKENS)
    assert list(page.context["tokens"]) == []
    assert list(page.context["other_tokens"]) == [api_token]
    assert ada_client.post(_revoke_url(api_token)).status_code == 302
    assert ApiClient(token).get("/leads").status_code == 401


def test_the_page_is_in_japanese(ada_client: Client, ada: User) -> None:
    ada.language = "ja"
    ada.save(update_fields=["language"])
    html = ada_client.get(TOKENS).content.decode()
    assert "APIトークン" in html


def test_every_member_finds_the_page_in_the_crm_navigation(bob_client: Client) -> None:
    html = bob_client.get(reverse("crm:lead-list")).content.decode()
    assert f'<a href="{TOKENS}">API tokens</a>' in html
    html = bob_client.get(TOKENS).content.decode()
    assert f'<a href="{TOKENS}" aria-current="page">API tokens</a>' in html
