"""Every CRM core view, for every persona: Ada (administrator of Kizuna Demo), Bob
(standard user there), Charlie (administrator of Sato Trading: objects of Kizuna
Demo are 404 to him, its pages show his own organization) and a signed-out visitor.

The records, memberships and invitations used all belong to Kizuna Demo. Write
actions are also tested for their effect (and its absence) in the per-view files.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from kizuna.crm import services
from kizuna.crm.models import Contact, Lead, Membership, Role

pytestmark = pytest.mark.django_db

PERSONAS = ("ada", "bob", "charlie", "anonymous")
SIGN_IN = "sign-in"  # a redirect to the sign-in page

# Pages of the current organization: Charlie sees his own.
Expected = dict[str, int | str]
OWN: Expected = {"ada": 200, "bob": 200, "charlie": 200, "anonymous": SIGN_IN}
# A record of Kizuna Demo.
RECORD: Expected = {"ada": 200, "bob": 200, "charlie": 404, "anonymous": SIGN_IN}
# Deleting a record of Kizuna Demo owned by Ada (or nobody): Membership.may_delete.
DELETE: Expected = {"ada": 200, "bob": 403, "charlie": 404, "anonymous": SIGN_IN}
# Administrator pages of the current organization.
ADMIN: Expected = {"ada": 200, "bob": 403, "charlie": 200, "anonymous": SIGN_IN}
# Administrator actions on a membership or invitation of Kizuna Demo.
ADMIN_ACTION: Expected = {"ada": 302, "bob": 403, "charlie": 404, "anonymous": SIGN_IN}

# name: (method, what the URL needs, data, {persona: status})
MATRIX: dict[str, tuple[str, str, dict[str, Any], Expected]] = {
    "home": ("get", "", {}, OWN),
    "organization-create": ("get", "", {}, OWN),
    "organization-switch": (
        "post", "", {"organization": "{organization}"},
        {"ada": 302, "bob": 302, "charlie": 404, "anonymous": SIGN_IN},
    ),
    "lead-list": ("get", "", {}, OWN),
    "lead-create": ("get", "", {}, OWN),
    "lead-bulk": ("post", "", {"action": "delete", "ids": "{lead}"}, DELETE),
    "lead-detail": ("get", "lead", {}, RECORD),
    "lead-edit": ("get", "lead", {}, RECORD),
    "lead-delete": ("get", "lead", {}, DELETE),
    "lead-convert": ("get", "lead", {}, RECORD),
    "contact-list": ("get", "", {}, OWN),
    "contact-create": ("get", "", {}, OWN),
    "contact-bulk": (
        "post", "", {"action": "owner", "owner": "none", "ids": "{contact}"},
        {"ada": 302, "bob": 302, "charlie": 404, "anonymous": SIGN_IN},
    ),
    "contact-detail": ("get", "contact", {}, RECORD),
    "contact-edit": ("get", "contact", {}, RECORD),
    "contact-delete": ("get", "contact", {}, DELETE),
    "settings": ("get", "", {}, ADMIN),
    "settings-members": ("get", "", {}, ADMIN),
    "settings-extensions": ("get", "", {}, ADMIN),
    "member-invite": (
        "post", "", {"email": "new@example.com", "role": Role.STANDARD},
        {"ada": 302, "bob": 403, "charlie": 302, "anonymous": SIGN_IN},
    ),
    "member-role": ("post", "membership", {"m{membership}-role": Role.STANDARD}, ADMIN_ACTION),
    "member-deactivate": ("post", "membership", {}, ADMIN_ACTION),
    "member-reactivate": ("post", "membership", {}, ADMIN_ACTION),
    "invitation-revoke": ("post", "invitation", {}, ADMIN_ACTION),
    "invitation-resend": ("post", "invitation", {}, ADMIN_ACTION),
    # The link of an invitation email: a public page that explains what to do.
    "invitation": ("get", "token", {}, {"ada": 200, "bob": 200, "charlie": 200, "anonymous": 200}),
}  # fmt: skip


def crm_core_url_names() -> set[str]:
    """The URL names of this app (sub-apps such as mail have their own namespaces)."""
    resolver = get_resolver()
    crm = next(
        p for p in resolver.url_patterns if isinstance(p, URLResolver) and p.namespace == "crm"
    )
    return {p.name for p in crm.url_patterns if isinstance(p, URLPattern) and p.name}


def test_the_matrix_covers_every_view_of_the_crm_core() -> None:
    assert crm_core_url_names() == set(MATRIX)


@pytest.fixture
def objects(
    lead: Lead, contact: Contact, ada_membership: Membership, bob_membership: Membership
) -> dict[str, Any]:
    invitation, token = services.invite_member(
        organization=ada_membership.organization,
        email="x@example.com",
        role=Role.STANDARD,
        by=ada_membership.user,
    )
    return {
        "lead": lead.pk,
        "contact": contact.pk,
        "membership": bob_membership.pk,
        "invitation": invitation.pk,
        "token": token,
        "organization": ada_membership.organization_id,
    }


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("name", sorted(MATRIX))
def test_persona_matrix(
    personas: dict[str, Client], objects: dict[str, Any], name: str, persona: str
) -> None:
    method, needs, data, expected = MATRIX[name]
    url = reverse(f"crm:{name}", args=[objects[needs]] if needs else [])
    filled = {key.format(**objects): str(value).format(**objects) for key, value in data.items()}
    response = getattr(personas[persona], method)(url, filled)
    if expected[persona] == SIGN_IN:
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("identity:login"))
    else:
        assert response.status_code == expected[persona]
