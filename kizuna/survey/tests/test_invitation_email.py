"""Inviting someone whose invitation email cannot be sent (a real SMTP failure: nothing listening,
or a server that refuses the message) keeps the invitation, says so on the page, and "Send again"
mails it once the server works: the same behaviour as the CRM's invitations."""

from __future__ import annotations

import pytest
from django.urls import reverse

from kizuna.identity.models import User
from kizuna.survey.audit.models import AuditAction, AuditEntry
from kizuna.survey.models import MemberInvitation, SurveyAccount
from kizuna.testing.personas import client_for
from kizuna.testing.smtp import MailServer, free_port, smtp_settings

pytestmark = pytest.mark.django_db

MEMBERS = reverse("survey:members")


def test_6_no_mail_server_keeps_the_invitation_and_send_again_mails_it(
    account: SurveyAccount, ada: User, mail_server: tuple[MailServer, int]
) -> None:
    client = client_for(ada)
    with smtp_settings(free_port()):
        response = client.post(
            MEMBERS, {"emails": "dan@example.com", "role": "member"}, follow=True
        )

    assert response.redirect_chain == [(MEMBERS, 302)]
    page = response.content.decode()
    assert (
        "Invited, but the invitation email could not be sent to: dan@example.com. Use “Send "
        "again” in the list of invitations when the mail server works again."
    ) in page
    dan = MemberInvitation.objects.of(account).get(email="dan@example.com")
    resend_url = reverse("survey:member-invitation-resend", args=[dan.pk])
    assert f'action="{resend_url}"' in page

    server, port = mail_server
    with smtp_settings(port):
        response = client.post(resend_url, follow=True)
    assert "The invitation was sent again to dan@example.com, with a new link." in (
        response.content.decode()
    )
    [message] = server.received
    assert message["To"] == "dan@example.com"
    assert "/survey/join/" in message.get_content()  # where Dan accepts or declines
    assert list(AuditEntry.objects.values_list("action", flat=True).order_by("pk")) == [
        AuditAction.MEMBER_INVITATION_SENT,
        AuditAction.MEMBER_INVITATION_RESENT,
    ]


def test_6_a_refused_resend_is_reported_and_changes_nothing(
    account: SurveyAccount, ada: User, mail_server: tuple[MailServer, int]
) -> None:
    client = client_for(ada)
    server, port = mail_server
    with smtp_settings(port):
        client.post(MEMBERS, {"emails": "dan@example.com", "role": "member"})
        dan = MemberInvitation.objects.of(account).get(email="dan@example.com")
        server.refusing = True
        response = client.post(
            reverse("survey:member-invitation-resend", args=[dan.pk]), follow=True
        )

    assert (
        "The invitation email to dan@example.com could not be sent. Send it again when the mail "
        "server works again."
    ) in response.content.decode()
    assert len(server.received) == 1  # the first invitation only
    kept = MemberInvitation.objects.get(pk=dan.pk)
    assert (kept.token_hash, kept.expires_at) == (dan.token_hash, dan.expires_at)  # old link works
    assert AuditEntry.objects.filter(action=AuditAction.MEMBER_INVITATION_RESENT).count() == 0


def test_6_the_failure_is_reported_in_japanese(account: SurveyAccount, ada: User) -> None:
    client = client_for(ada)
    with smtp_settings(free_port()):
        response = client.post(
            MEMBERS,
            {"emails": "dan@example.com", "role": "member"},
            headers={"accept-language": "ja"},
            follow=True,
        )
    assert "招待メールを送信できませんでした" in response.content.decode()
