"""Settings: only administrators (Bob gets 403, Charlie 404 for other organizations' rows)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from kizuna.crm import extensions
from kizuna.crm.models import MemberInvitation, Membership, Organization, Role

pytestmark = pytest.mark.django_db

ADMIN_PAGES = ["crm:settings", "crm:settings-members", "crm:settings-extensions"]


@pytest.mark.parametrize("name", ADMIN_PAGES)
@pytest.mark.parametrize(
    "persona,status", [("ada", 200), ("bob", 403), ("charlie", 200), ("anonymous", 302)]
)
def test_settings_pages_are_for_administrators(
    personas: dict[str, Client], name: str, persona: str, status: int
) -> None:
    response = personas[persona].get(reverse(name))
    assert response.status_code == status
    if persona == "charlie":
        # Charlie administers his own organization and sees only it.
        assert response.context["organization"].name == "Sato Trading"


def test_the_settings_link_shows_for_administrators_only(
    ada_client: Client, bob_client: Client
) -> None:
    assert (
        f'href="{reverse("crm:settings")}"' in ada_client.get(reverse("crm:home")).content.decode()
    )
    assert (
        f'href="{reverse("crm:settings")}"'
        not in bob_client.get(reverse("crm:home")).content.decode()
    )


def test_extensions_list_is_empty_until_something_registers(
    ada_client: Client, monkeypatch: Any
) -> None:
    monkeypatch.setattr(extensions, "_extensions", [])
    response = ada_client.get(reverse("crm:settings-extensions"))
    assert "No extensions are available yet." in response.content.decode()

    def survey(request: Any, organization: Organization) -> extensions.Extension:
        return extensions.Extension(
            name="Survey", description="Send surveys.", url="/crm/x/", status="Off"
        )

    extensions.register_extension(survey)
    extensions.register_extension(survey)
    response = ada_client.get(reverse("crm:settings-extensions"))
    assert [e.name for e in response.context["extensions"]] == ["Survey"]
    assert '<a href="/crm/x/"><strong>Survey</strong></a>' in response.content.decode()


@pytest.mark.parametrize("persona,status", [("ada", 302), ("bob", 403), ("charlie", 302)])
def test_renaming_the_organization(
    personas: dict[str, Client], organization: Organization, persona: str, status: int
) -> None:
    response = personas[persona].post(reverse("crm:settings"), {"name": "Kizuna KK"})
    assert response.status_code == status
    organization.refresh_from_db()
    assert organization.name == ("Kizuna KK" if persona == "ada" else "Kizuna Demo")


@pytest.mark.parametrize("persona,status", [("ada", 302), ("bob", 403), ("charlie", 404)])
def test_changing_a_role(
    personas: dict[str, Client], bob_membership: Membership, persona: str, status: int
) -> None:
    response = personas[persona].post(
        reverse("crm:member-role", args=[bob_membership.pk]),
        {f"m{bob_membership.pk}-role": Role.ADMINISTRATOR},
    )
    assert response.status_code == status
    bob_membership.refresh_from_db()
    assert bob_membership.role == (Role.ADMINISTRATOR if persona == "ada" else Role.STANDARD)


def test_the_last_administrator_cannot_demote_herself(
    ada_client: Client, ada_membership: Membership
) -> None:
    response = ada_client.post(
        reverse("crm:member-role", args=[ada_membership.pk]),
        {f"m{ada_membership.pk}-role": Role.STANDARD},
        follow=True,
    )
    assert "An organization needs at least one active administrator." in response.content.decode()
    ada_membership.refresh_from_db()
    assert ada_membership.role == Role.ADMINISTRATOR


def test_the_last_administrator_cannot_be_deactivated(
    ada_client: Client, ada_membership: Membership
) -> None:
    response = ada_client.post(
        reverse("crm:member-deactivate", args=[ada_membership.pk]), follow=True
    )
    assert "An organization needs at least one active administrator." in response.content.decode()
    ada_membership.refresh_from_db()
    assert ada_membership.is_active is True


@pytest.mark.parametrize("persona,status", [("ada", 302), ("bob", 403), ("charlie", 404)])
def test_deactivating_and_reactivating_a_member(
    personas: dict[str, Client], bob_membership: Membership, persona: str, status: int
) -> None:
    response = personas[persona].post(reverse("crm:member-deactivate", args=[bob_membership.pk]))
    assert response.status_code == status
    bob_membership.refresh_from_db()
    assert bob_membership.is_active is (persona != "ada")
    if persona == "ada":
        # Bob can no longer open the organization...
        from kizuna.testing.personas import client_for

        assert client_for(bob_membership.user).get(reverse("crm:lead-list")).status_code == 404
        personas["ada"].post(reverse("crm:member-reactivate", args=[bob_membership.pk]))
        bob_membership.refresh_from_db()
        assert bob_membership.is_active is True


def test_bob_cannot_reactivate(
    bob_client: Client, ada_membership: Membership, organization: Any
) -> None:
    from kizuna.testing.personas import make_user

    gone = Membership.objects.create(
        organization=organization, user=make_user("gone@example.com"), is_active=False
    )
    assert bob_client.post(reverse("crm:member-reactivate", args=[gone.pk])).status_code == 403
    gone.refresh_from_db()
    assert gone.is_active is False


@pytest.mark.parametrize("persona,status", [("ada", 302), ("bob", 403), ("charlie", 302)])
def test_inviting_a_member_sends_an_email(
    personas: dict[str, Client], persona: str, status: int, settings: Any
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    response = personas[persona].post(
        reverse("crm:member-invite"), {"email": "New.Person@Example.com", "role": Role.STANDARD}
    )
    assert response.status_code == status
    if persona == "bob":
        assert MemberInvitation.objects.count() == 0
        assert mail.outbox == []
        return
    invitation = MemberInvitation.objects.get()
    expected_org = "Kizuna Demo" if persona == "ada" else "Sato Trading"
    assert (invitation.email, invitation.organization.name) == (
        "new.person@example.com",
        expected_org,
    )
    assert [message.to for message in mail.outbox] == [["new.person@example.com"]]
    assert mail.outbox[0].subject == f"Invitation to join {expected_org} in Kizuna CRM"
    assert "/crm/invitations/" in mail.outbox[0].body


def test_inviting_an_active_member_is_a_form_error(
    ada_client: Client, bob_membership: Membership, settings: Any
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    response = ada_client.post(
        reverse("crm:member-invite"), {"email": "BOB@example.com", "role": Role.STANDARD}
    )
    assert response.status_code == 400
    assert "This person is already a member of the organization." in response.content.decode()
    assert 'value="BOB@example.com"' in response.content.decode()
    assert MemberInvitation.objects.count() == 0
    assert mail.outbox == []


@pytest.mark.parametrize("persona,status", [("ada", 302), ("bob", 403), ("charlie", 404)])
def test_withdrawing_an_invitation(
    personas: dict[str, Client],
    ada_membership: Membership,
    persona: str,
    status: int,
    settings: Any,
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    from kizuna.crm import services

    invitation, _token = services.invite_member(
        organization=ada_membership.organization,
        email="x@example.com",
        role=Role.STANDARD,
        by=ada_membership.user,
    )
    response = personas[persona].post(reverse("crm:invitation-revoke", args=[invitation.pk]))
    assert response.status_code == status
    assert MemberInvitation.objects.filter(pk=invitation.pk).exists() is (persona != "ada")


def test_members_page_lists_members_and_pending_invitations(
    ada_client: Client,
    ada_membership: Membership,
    bob_membership: Membership,
    charlie_membership: Membership,
    settings: Any,
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    from kizuna.crm import services

    services.invite_member(
        organization=ada_membership.organization,
        email="x@example.com",
        role=Role.ADMINISTRATOR,
        by=ada_membership.user,
    )
    response = ada_client.get(reverse("crm:settings-members"))
    members = [m.user.email for m, _form in response.context["memberships"]]
    assert members == ["ada@example.com", "bob@example.com"]
    assert [i.email for i in response.context["invitations"]] == ["x@example.com"]


@pytest.mark.parametrize(
    "name,tab",
    [
        ("crm:settings", "Organization"),
        ("crm:settings-members", "Members"),
        ("crm:settings-extensions", "Extensions & APIs"),
        ("crm_integration:settings", "Extensions & APIs"),
        ("crm_audit:log", "Audit log"),
    ],
)
def test_exactly_one_settings_tab_is_current(
    personas: dict[str, Client], name: str, tab: str
) -> None:
    # An app's own page named "settings" (the Survey integration's) once lit up
    # "Organization" as well as "Extensions & APIs".
    html = personas["ada"].get(reverse(name)).content.decode()
    tabs = html.split('<nav class="settings-tabs"', 1)[1].split("</nav>", 1)[0]
    current = [
        part for part in tabs.split("<a ")[1:] if 'aria-current="page"' in part.split(">")[0]
    ]
    assert [part.split(">", 1)[1].split("<", 1)[0] for part in current] == [tab]
