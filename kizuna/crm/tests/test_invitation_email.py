"""An invitation whose email cannot be sent (a real SMTP failure: nothing listening, or a server
that refuses the message) is kept, the administrator is told on the page instead of getting a
500, and "Send again" mails the same invitation with a fresh link once the server works."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.urls import reverse

from kizuna.crm.audit.models import AuditAction, AuditEntry
from kizuna.crm.models import MemberInvitation, Membership, Role
from kizuna.testing.smtp import MailServer, free_port, smtp_settings

pytestmark = pytest.mark.django_db

MEMBERS = reverse("crm:settings-members")


def invite(client: Client, email: str = "new@example.com") -> Any:
    return client.post(
        reverse("crm:member-invite"), {"email": email, "role": Role.STANDARD}, follow=True
    )


def test_6_no_mail_server_keeps_the_invitation_and_says_so_on_the_page(
    ada_client: Client, ada_membership: Membership, mail_server: tuple[MailServer, int]
) -> None:
    server, port = mail_server
    closed = free_port()  # nothing listens there: the connection is refused
    with smtp_settings(closed):
        response = invite(ada_client)

    assert response.status_code == 200
    assert response.redirect_chain == [(MEMBERS, 302)]
    page = response.content.decode()
    assert (
        "The invitation for new@example.com is saved, but its email could not be sent. "
        "Use “Send again” under Pending invitations when the mail server works again."
    ) in page
    invitation = MemberInvitation.objects.get()
    assert (invitation.email, invitation.organization_id) == (
        "new@example.com",
        ada_membership.organization_id,
    )
    resend_url = reverse("crm:invitation-resend", args=[invitation.pk])
    assert f'action="{resend_url}"' in page
    assert list(AuditEntry.objects.values_list("action", flat=True)) == [
        AuditAction.INVITATION_SENT
    ]

    # The mail server works again: "Send again" mails a link that joins the organization.
    with smtp_settings(port):
        response = ada_client.post(resend_url, follow=True)
    assert (
        "The invitation was sent again to new@example.com. The new link works for 7 days."
        in response.content.decode()
    )
    [message] = server.received
    assert message["To"] == "new@example.com"
    assert message["Subject"] == "Invitation to join Kizuna Demo in Kizuna CRM"
    link = next(word for word in message.get_content().split() if "/crm/invitations/" in word)
    assert ada_client.get(urlsplit(link).path).status_code == 200
    assert MemberInvitation.objects.get().pk == invitation.pk  # the same invitation


def test_6_a_refused_resend_keeps_the_invitation_and_its_first_link(
    ada_client: Client, ada_membership: Membership, mail_server: tuple[MailServer, int]
) -> None:
    server, port = mail_server
    with smtp_settings(port):
        invite(ada_client)
        [message] = server.received
        first_link = next(w for w in message.get_content().split() if "/crm/invitations/" in w)
        invitation = MemberInvitation.objects.get()

        server.refusing = True
        response = ada_client.post(
            reverse("crm:invitation-resend", args=[invitation.pk]), follow=True
        )

    assert response.status_code == 200
    assert "its email could not be sent" in response.content.decode()
    assert MemberInvitation.objects.filter(pk=invitation.pk).exists()
    assert len(server.received) == 1
    # Nothing changed: the link of the first email still works, and no resend is recorded.
    assert ada_client.get(urlsplit(first_link).path).status_code == 200
    assert MemberInvitation.objects.get().token_hash == invitation.token_hash
    assert [entry.action for entry in AuditEntry.objects.order_by("pk")] == [
        AuditAction.INVITATION_SENT
    ]


def test_6_only_administrators_of_the_organization_send_an_invitation_again(
    personas: dict[str, Client], ada_client: Client, ada_membership: Membership, settings: Any
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    invite(ada_client)
    invitation = MemberInvitation.objects.get()
    url = reverse("crm:invitation-resend", args=[invitation.pk])

    assert personas["bob"].post(url).status_code == 403
    assert personas["charlie"].post(url).status_code == 404
    assert personas["anonymous"].post(url).status_code == 302
    assert MemberInvitation.objects.get().token_hash == invitation.token_hash
    assert AuditEntry.objects.filter(action=AuditAction.INVITATION_RESENT).count() == 0
