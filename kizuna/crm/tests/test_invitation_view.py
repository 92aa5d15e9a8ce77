"""Accepting an invitation: signed in as the invited address, or creating the account."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kizuna.crm import services
from kizuna.crm.models import MemberInvitation, Membership, Role
from kizuna.identity.models import User
from kizuna.testing.personas import client_for, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def invite(ada_membership: Membership) -> Any:
    def invite(email: str, role: str = Role.STANDARD) -> str:
        _invitation, token = services.invite_member(
            organization=ada_membership.organization, email=email, role=role, by=ada_membership.user
        )
        return reverse("crm:invitation", args=[token])

    return invite


def test_the_email_holds_the_link_and_only_its_hash_is_stored(invite: Any) -> None:
    url = invite("new@example.com")
    token = url.rstrip("/").rsplit("/", 1)[1]
    assert url in mail.outbox[0].body
    invitation = MemberInvitation.objects.get()
    assert invitation.token_hash == services.hash_token(token)
    assert token not in invitation.token_hash
    assert invitation.expires_at - invitation.created_at == timedelta(days=7)


def test_a_new_person_creates_an_account_and_joins(
    invite: Any, anonymous_client: Client, ada_membership: Membership
) -> None:
    url = invite("new@example.com", Role.ADMINISTRATOR)
    page = anonymous_client.get(url)
    assert page.status_code == 200
    assert "Join Kizuna Demo" in page.content.decode()
    response = anonymous_client.post(
        url,
        {
            "full_name": "Nana Shin",
            "password1": "a-long-pass-phrase",
            "password2": "a-long-pass-phrase",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("crm:home")
    user = User.objects.get(email="new@example.com")
    assert user.check_password("a-long-pass-phrase")
    membership = Membership.objects.get(user=user)
    assert (membership.organization, membership.role) == (
        ada_membership.organization,
        Role.ADMINISTRATOR,
    )
    assert anonymous_client.get(reverse("crm:home")).status_code == 200
    # The link works once.
    assert Client().get(url).status_code == 410


def test_a_weak_password_keeps_the_name_typed(invite: Any, anonymous_client: Client) -> None:
    url = invite("new@example.com")
    response = anonymous_client.post(
        url, {"full_name": "Nana Shin", "password1": "123", "password2": "123"}
    )
    assert response.status_code == 400
    assert 'value="Nana Shin"' in response.content.decode()
    assert not User.objects.filter(email="new@example.com").exists()


def test_someone_with_an_account_signs_in_then_accepts(
    invite: Any, anonymous_client: Client
) -> None:
    carol = make_user("carol@example.com")
    url = invite("Carol@Example.com")
    page = anonymous_client.get(url)
    assert "Sign in with this email address to accept." in page.content.decode()
    assert page.context["sign_in_url"] == reverse("identity:login") + "?next=" + url.replace(
        "/", "%2F"
    )
    # A signed-out POST without the account form creates nothing.
    assert anonymous_client.post(url).status_code == 400
    assert not Membership.objects.filter(user=carol).exists()

    client = client_for(carol)
    assert client.post(url).status_code == 302
    assert Membership.objects.get(user=carol).role == Role.STANDARD


def test_another_signed_in_user_cannot_accept(invite: Any, charlie_membership: Membership) -> None:
    url = invite("someone@example.com")
    client = client_for(charlie_membership.user)
    page = client.get(url)
    assert "You are signed in as charlie@example.com." in page.content.decode()
    response = client.post(url)
    assert response.status_code == 400
    assert not Membership.objects.filter(
        user=charlie_membership.user, organization__name="Kizuna Demo"
    ).exists()
    assert MemberInvitation.objects.get().accepted_at is None


def test_an_expired_invitation_is_refused(invite: Any, anonymous_client: Client) -> None:
    url = invite("late@example.com")
    MemberInvitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = anonymous_client.get(url)
    assert response.status_code == 410
    assert "This invitation has expired." in response.content.decode()
    response = anonymous_client.post(
        url,
        {"full_name": "Late", "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"},
    )
    assert response.status_code == 410
    assert not User.objects.filter(email="late@example.com").exists()


def test_an_unknown_token_is_refused(anonymous_client: Client) -> None:
    response = anonymous_client.get(reverse("crm:invitation", args=["nope"]))
    assert response.status_code == 410
    assert "This invitation link is not valid." in response.content.decode()


def test_accepting_reactivates_a_deactivated_member(
    invite: Any, bob_membership: Membership, ada_membership: Membership
) -> None:
    services.deactivate_member(membership=bob_membership, by=ada_membership.user)
    url = invite("bob@example.com", Role.ADMINISTRATOR)
    assert client_for(bob_membership.user).post(url).status_code == 302
    bob_membership.refresh_from_db()
    assert (bob_membership.is_active, bob_membership.role) == (True, Role.ADMINISTRATOR)


def test_the_invitation_email_is_in_the_invitees_language(ada_membership: Membership) -> None:
    make_user("kenji@example.com", language="ja")
    services.invite_member(
        organization=ada_membership.organization,
        email="kenji@example.com",
        role=Role.STANDARD,
        by=ada_membership.user,
    )
    assert mail.outbox[0].subject == "Kizuna CRM の組織「Kizuna Demo」への招待"


def test_the_invitation_names_the_inviting_member_as_its_sender(ada_membership: Membership) -> None:
    services.invite_member(
        organization=ada_membership.organization,
        email="new@example.com",
        role=Role.STANDARD,
        by=ada_membership.user,
    )
    (sent,) = mail.outbox
    assert sent.extra_headers == {
        "X-Kizuna-Mail-Kind": "crm-invitation",
        "X-Kizuna-Sent-By": "ada@example.com",
    }
    assert sent.message()["X-Kizuna-Sent-By"] == "ada@example.com"
