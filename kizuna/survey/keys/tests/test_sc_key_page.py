from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from kizuna.survey.keys import services
from kizuna.survey.keys.models import ServiceKey

pytestmark = pytest.mark.django_db

PAGE = reverse("survey:survey_keys:sc-key")
REGENERATE = reverse("survey:survey_keys:regenerate")


def test_k1_administrator_sees_their_key_and_its_email(ada_client: Client, ada_member):
    response = ada_client.get(PAGE)

    assert response.status_code == 200
    key = ServiceKey.objects.get(member=ada_member, revoked_at__isnull=True)
    assert response.context["key"] == key.reveal()
    assert key.reveal().startswith("sck_")
    html = response.content.decode()
    assert key.reveal() in html
    assert "ada@example.com" in html
    assert 'data-copy-target="sc-key-value"' in html
    assert "survey_keys/copy.js" in html
    assert f'href="{reverse("survey:survey_webhooks:endpoints")}"' in html  # Survey subnav
    assert "no-store" in response["Cache-Control"]


def test_k1_key_is_stored_encrypted_and_shown_the_same_on_every_visit(
    ada_client: Client, ada_member
):
    first = ada_client.get(PAGE).context["key"]
    second = ada_client.get(PAGE).context["key"]

    assert first == second
    row = ServiceKey.objects.get(member=ada_member)
    assert first not in row.encrypted_key
    assert first not in row.fingerprint


def test_k1_page_is_in_japanese_for_japanese_users(ada_client: Client, ada_member):
    response = ada_client.get(PAGE, HTTP_ACCEPT_LANGUAGE="ja")

    assert response.status_code == 200
    assert "SCキー" in response.content.decode()


def test_k1_standard_member_is_refused_and_gets_no_key(bob_client: Client, bob_member):
    assert bob_client.get(PAGE).status_code == 403
    assert bob_client.get(REGENERATE).status_code == 403
    assert bob_client.post(REGENERATE).status_code == 403
    assert ServiceKey.objects.count() == 0


def test_k1_user_without_a_survey_account_gets_404(charlie_client: Client):
    assert charlie_client.get(PAGE).status_code == 404
    assert charlie_client.post(REGENERATE).status_code == 404
    assert ServiceKey.objects.count() == 0


def test_k1_administrator_of_another_account_sees_only_their_own_key(
    carol_client: Client, carol_member, ada_member
):
    ada_key = services.get_or_create_key(member=ada_member)

    response = carol_client.get(PAGE)

    assert response.status_code == 200
    assert response.context["key"] != ada_key.reveal()
    assert ada_key.reveal() not in response.content.decode()
    assert "carol@example.com" in response.content.decode()


def test_k1_signed_out_visitor_is_sent_to_sign_in(client: Client):
    response = client.get(PAGE)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("identity:login"))
    assert client.post(REGENERATE).status_code == 302
    assert ServiceKey.objects.count() == 0


def test_k2_regenerate_asks_for_confirmation_first(ada_client: Client, ada_member):
    old = services.get_or_create_key(member=ada_member)

    response = ada_client.get(REGENERATE)

    assert response.status_code == 200
    assert ServiceKey.objects.get(pk=old.pk).revoked_at is None


def test_k2_regenerating_revokes_old_key_at_once(ada_client: Client, ada_member):
    old = services.get_or_create_key(member=ada_member)
    old_value = old.reveal()

    response = ada_client.post(REGENERATE)

    assert response.status_code == 302
    assert response["Location"] == PAGE
    old.refresh_from_db()
    assert old.revoked_at is not None
    new = ServiceKey.objects.get(member=ada_member, revoked_at__isnull=True)
    assert new.reveal() != old_value
    with pytest.raises(services.KeyAuthenticationError) as refused:
        services.authenticate_key(email="ada@example.com", key=old_value, address="10.0.0.1")
    assert refused.value.code == "revoked_key"
    assert (
        services.authenticate_key(email="ada@example.com", key=new.reveal(), address="10.0.0.1")
        == new
    )
    assert ada_client.get(PAGE).context["key"] == new.reveal()


def test_k1_a_key_that_cannot_be_decrypted_any_more_asks_for_a_regeneration(
    ada_client: Client, ada_member
):
    services.get_or_create_key(member=ada_member)
    ServiceKey.objects.filter(member=ada_member).update(encrypted_key="stored-under-an-old-secret")

    response = ada_client.get(PAGE)

    assert response.status_code == 200
    assert response.context["key"] is None
    html = response.content.decode()
    assert 'id="sc-key-unreadable"' in html
    assert 'id="sc-key-value"' not in html
    assert f'href="{REGENERATE}"' in html
    assert ada_client.post(REGENERATE).status_code == 302
    assert ada_client.get(PAGE).context["key"].startswith("sck_")
