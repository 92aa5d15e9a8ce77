"""Issue 9.2: nobody becomes a member of a Survey account without accepting, invitation links
expire, and invitation emails per account are rate limited. Through HTTP: the Survey REST API,
the members page, the invited person's pages and the emailed link."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from django.core import mail
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from kizuna.config import Rate
from kizuna.identity.models import User
from kizuna.survey.audit.models import AuditAction, AuditEntry
from kizuna.survey.keys.services import get_or_create_key
from kizuna.survey.models import AccountMember, MemberInvitation, MemberRole, SurveyAccount
from kizuna.survey.services import create_account
from kizuna.testing.personas import PASSWORD, client_for, make_user
from kizuna.work import leases

pytestmark = pytest.mark.django_db

MEMBERS_API = "/survey/api/v1/members"
NEW_PASSWORD = "a-brand-new-passphrase-42"


@dataclass
class World:
    """Mallory owns "AAA Bait" (a name that sorts first); Ada administers "Ada's Surveys";
    Carol has an account of her own; Charlie is a user with no Survey account (say, a CRM
    administrator of another organization)."""

    mallory: User
    bait: SurveyAccount
    ada: User
    surveys: SurveyAccount
    carol: User
    carol_account: SurveyAccount
    charlie: User

    def headers(self, owner: User, account: SurveyAccount) -> dict[str, str]:
        member = AccountMember.objects.get(account=account, user=owner)
        key = get_or_create_key(member=member, by=owner).reveal()
        return {"X-SC-Email": owner.email, "X-SC-Key": key}


@pytest.fixture
def world(db: None) -> World:
    mallory = make_user("mallory@example.com", full_name="Mallory", language="en")
    ada = make_user("ada@example.com", full_name="Ada Lovelace", language="en")
    carol = make_user("carol@example.com", full_name="Carol Tanaka", language="en")
    return World(
        mallory=mallory,
        bait=create_account(name="AAA Bait", owner=mallory),
        ada=ada,
        surveys=create_account(name="Ada's Surveys", owner=ada),
        carol=carol,
        carol_account=create_account(name="Carol's Research", owner=carol),
        charlie=make_user("charlie@example.com", full_name="Charlie Sato", language="en"),
    )


def invite(world: World, emails: list[str], **extra: Any) -> Any:
    return Client().post(
        MEMBERS_API,
        {"emails": emails},
        content_type="application/json",
        headers=world.headers(world.mallory, world.bait) | extra.pop("headers", {}),
        **extra,
    )


def join_link(message: mail.EmailMessage) -> str:
    [link] = re.findall(r"https?://[^/\s]+(/survey/join/[^\s]+/)", str(message.body))
    return link


def actions(account: SurveyAccount) -> list[str]:
    return list(AuditEntry.objects.of(account).order_by("pk").values_list("action", flat=True))


def test_9_2_an_existing_user_invited_through_the_api_is_not_a_member_until_they_accept(
    world: World,
) -> None:
    response = invite(world, ["Charlie@Example.com", "carol@example.com"])

    assert response.status_code == 200
    assert [r["status"] for r in response.json()["results"]] == ["invited", "invited"]
    assert not AccountMember.objects.filter(account=world.bait).exclude(user=world.mallory)
    charlie = client_for(world.charlie)
    carol = client_for(world.carol)
    # Neither sees Bait as an account, let alone their default one, nor any of its pages.
    home = charlie.get(reverse("survey:home"))
    assert home.templates[0].name == "survey/start.html"  # still no account: offered to create
    assert "Mallory invites you to the Survey account “AAA Bait”, as Member." in (
        home.content.decode()
    )
    assert carol.get(reverse("survey:home")).context["member"].account == world.carol_account
    assert charlie.get(reverse("survey:members")).status_code == 404
    [for_charlie, _for_carol] = mail.outbox
    assert for_charlie.to == ["charlie@example.com"]
    assert for_charlie.subject == "Mallory invites you to the Survey account “AAA Bait”"
    assert "Mallory (mallory@example.com) invites you to join the Survey account “AAA Bait”" in (
        str(for_charlie.body)
    )

    invitation = MemberInvitation.objects.get(email="charlie@example.com")
    accepted = charlie.post(reverse("survey:invitation-accept", args=[invitation.pk]))

    assert accepted.status_code == 302
    member = AccountMember.objects.get(account=world.bait, user=world.charlie)
    assert member.role == MemberRole.MEMBER
    assert charlie.get(reverse("survey:home")).context["member"] == member
    assert actions(world.bait) == [
        AuditAction.MEMBER_INVITATION_SENT,
        AuditAction.MEMBER_INVITATION_SENT,
        AuditAction.MEMBER_INVITATION_ACCEPTED,
    ]


def test_9_2_an_invited_person_declines_in_survey_and_joins_nothing(world: World) -> None:
    invite(world, ["carol@example.com"])
    invitation = MemberInvitation.objects.get()
    carol = client_for(world.carol)

    declined = carol.post(reverse("survey:invitation-decline", args=[invitation.pk]), follow=True)

    assert "You declined the invitation to “AAA Bait”." in declined.content.decode()
    assert not AccountMember.objects.filter(account=world.bait, user=world.carol).exists()
    assert not MemberInvitation.objects.exists()
    assert actions(world.bait)[-1] == AuditAction.MEMBER_INVITATION_DECLINED
    # The same invitation cannot be accepted afterwards.
    again = carol.post(reverse("survey:invitation-accept", args=[invitation.pk]))
    assert again.status_code == 404
    assert not AccountMember.objects.filter(account=world.bait, user=world.carol).exists()


def test_9_2_only_the_invited_person_answers_an_invitation(world: World) -> None:
    invite(world, ["carol@example.com"])
    invitation = MemberInvitation.objects.get()

    for client in (client_for(world.charlie), client_for(world.ada)):
        for name in ("survey:invitation-accept", "survey:invitation-decline"):
            assert client.post(reverse(name, args=[invitation.pk])).status_code == 404
    signed_out = Client().post(reverse("survey:invitation-accept", args=[invitation.pk]))

    assert signed_out.status_code == 302 and "/accounts/sign-in/" in signed_out["Location"]
    assert MemberInvitation.objects.filter(pk=invitation.pk).exists()
    assert AccountMember.objects.filter(account=world.bait).count() == 1


def test_9_2_a_new_address_joins_through_the_emailed_link_by_choosing_a_password(
    world: World,
) -> None:
    invite(world, ["dana@example.org"])
    link = join_link(mail.outbox[0])
    visitor = Client()

    page = visitor.get(link)
    joined = visitor.post(
        link,
        {
            "answer": "accept",
            "full_name": "Dana Ito",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
        },
    )

    assert "Choose your name and a password to accept:" in page.content.decode()
    assert joined.status_code == 302
    dana = User.objects.get(email="dana@example.org")
    assert (dana.full_name, dana.check_password(NEW_PASSWORD)) == ("Dana Ito", True)
    assert AccountMember.objects.filter(account=world.bait, user=dana).exists()
    assert visitor.get(reverse("survey:home")).context["member"].account == world.bait
    assert visitor.get(link).status_code == 410  # the link worked once


def test_9_2_an_existing_user_must_sign_in_as_the_invited_address_to_accept_by_link(
    world: World,
) -> None:
    invite(world, ["carol@example.com"])
    link = join_link(mail.outbox[0])

    signed_out = Client().get(link).content.decode()
    as_charlie = client_for(world.charlie)
    refused = as_charlie.post(link, {"answer": "accept"})
    carol = client_for(world.carol)
    accepted = carol.post(link, {"answer": "accept"})

    assert "Sign in with this email address to accept." in signed_out
    assert 'name="password1"' not in signed_out  # nobody sets the password of Carol's user
    assert refused.status_code == 400
    assert "This invitation is for another email address." in refused.content.decode()
    assert accepted.status_code == 302
    assert set(
        AccountMember.objects.filter(account=world.bait).values_list("user__email", flat=True)
    ) == {"mallory@example.com", "carol@example.com"}


def test_9_2_whoever_holds_the_emailed_link_can_decline_without_signing_in(world: World) -> None:
    invite(world, ["carol@example.com"])

    Client().post(join_link(mail.outbox[0]), {"answer": "decline"})

    assert not MemberInvitation.objects.exists()
    entry = AuditEntry.objects.of(world.bait).get(action=AuditAction.MEMBER_INVITATION_DECLINED)
    assert (entry.actor, entry.target_repr) == (None, "carol@example.com")


def test_9_2_an_invitation_expires_the_worker_records_it_and_the_address_can_be_invited_again(
    world: World,
) -> None:
    with override_settings(KIZUNA_SURVEY_MEMBER_INVITATION_DAYS=3):
        invite(world, ["carol@example.com", "dana@example.org"])
    carol_invitation, _dana = MemberInvitation.objects.order_by("email")
    assert (carol_invitation.expires_at - carol_invitation.created_at).days == 3
    link = join_link(mail.outbox[0])
    MemberInvitation.objects.update(expires_at=timezone.now(), next_attempt_at=timezone.now())

    expired_page = Client().get(link)
    accept = client_for(world.carol).post(
        reverse("survey:invitation-accept", args=[carol_invitation.pk])
    )
    assert expired_page.status_code == 410
    assert "This invitation has expired." in expired_page.content.decode()
    assert accept.status_code == 404

    assert leases.run_due_work(worker_id="test-worker") == 2
    assert not MemberInvitation.objects.exists()
    assert actions(world.bait)[-2:] == [AuditAction.MEMBER_INVITATION_EXPIRED] * 2
    assert not AccountMember.objects.filter(account=world.bait, user=world.carol).exists()

    again = invite(world, ["carol@example.com"])
    assert again.json()["results"][0]["status"] == "invited"


def test_9_2_an_expired_invitation_not_yet_swept_is_recorded_when_the_address_is_invited_again(
    world: World,
) -> None:
    invite(world, ["carol@example.com"])
    MemberInvitation.objects.update(expires_at=timezone.now())

    again = invite(world, ["carol@example.com"])

    assert again.json()["results"][0]["status"] == "invited"
    assert actions(world.bait) == [
        AuditAction.MEMBER_INVITATION_SENT,
        AuditAction.MEMBER_INVITATION_EXPIRED,
        AuditAction.MEMBER_INVITATION_SENT,
    ]
    assert len(mail.outbox) == 2


@override_settings(KIZUNA_SURVEY_MEMBER_INVITATION_RATE=Rate(3, 3600))
def test_9_2_invitation_emails_per_account_are_rate_limited_with_a_clear_429(
    world: World,
) -> None:
    first = invite(world, ["a@example.org", "b@example.org"])
    refused = invite(world, ["c@example.org", "d@example.org"])
    refused_ja = invite(
        world, ["c@example.org", "d@example.org"], headers={"Accept-Language": "ja"}
    )
    other_account = Client().post(
        MEMBERS_API,
        {"emails": ["c@example.org", "d@example.org", "e@example.org"]},
        content_type="application/json",
        headers=world.headers(world.ada, world.surveys),
    )

    assert first.status_code == 200
    assert refused.status_code == 429
    assert 3590 <= int(refused["Retry-After"]) <= 3600
    assert refused.json()["error"] == {
        "code": "throttled",
        "message": "Too many invitation emails: a Survey account may send 3 in 1 hours. 1 can be "
        "sent now and this would send 2. Nothing was sent: try again in 60 minutes, or invite "
        "fewer people at once.",
        "fields": {},
    }
    assert "招待メールが多すぎます" in refused_ja.json()["error"]["message"]
    assert sorted(MemberInvitation.objects.of(world.bait).values_list("email", flat=True)) == [
        "a@example.org",
        "b@example.org",
    ]
    assert other_account.status_code == 200  # each account counts on its own
    assert len(mail.outbox) == 2 + 3
    # An address invited already or a member sends nothing, so it never counts.
    assert invite(world, ["a@example.org", "mallory@example.com", "c@example.org"]).status_code == (
        200
    )


@override_settings(KIZUNA_SURVEY_MEMBER_INVITATION_RATE=Rate(1, 3600))
def test_9_2_the_members_page_and_send_again_say_when_the_rate_is_reached(world: World) -> None:
    ada = client_for(world.ada)
    ada.post(reverse("survey:members"), {"emails": "x@example.org", "role": "member"})
    invitation = MemberInvitation.objects.get()

    page = ada.post(reverse("survey:members"), {"emails": "y@example.org", "role": "member"})
    resent = ada.post(reverse("survey:member-invitation-resend", args=[invitation.pk]), follow=True)

    assert page.status_code == 400
    assert "Too many invitation emails: a Survey account may send 1 in 1 hours." in (
        page.content.decode()
    )
    assert "Too many invitation emails" in resent.content.decode()
    assert list(MemberInvitation.objects.values_list("email", flat=True)) == ["x@example.org"]
    assert MemberInvitation.objects.get().token_hash == invitation.token_hash
    assert len(mail.outbox) == 1


def test_9_2_the_invited_role_is_given_on_acceptance_and_the_last_administrator_rule_holds(
    world: World,
) -> None:
    Client().post(
        MEMBERS_API,
        {"emails": ["carol@example.com"], "role": "admin"},
        content_type="application/json",
        headers=world.headers(world.ada, world.surveys),
    )
    carol = client_for(world.carol)
    carol.post(reverse("survey:invitation-accept", args=[MemberInvitation.objects.get().pk]))
    carol_member = AccountMember.objects.get(account=world.surveys, user=world.carol)
    assert carol_member.role == MemberRole.ADMINISTRATOR

    carol.post(reverse("survey:member-remove", args=[carol_member.pk]))
    ada_member = AccountMember.objects.get(account=world.surveys, user=world.ada)
    last = client_for(world.ada).post(reverse("survey:member-remove", args=[ada_member.pk]))

    assert last.status_code == 302
    assert list(
        AccountMember.objects.filter(account=world.surveys).values_list("user__email", flat=True)
    ) == ["ada@example.com"]


def test_9_2_a_user_made_by_kizuna_without_a_password_sets_one_through_the_link(
    world: World,
) -> None:
    placeholder = User.objects.create_user("erin@example.org", None)  # e.g. by the trust route
    invite(world, ["erin@example.org"])

    Client().post(
        join_link(mail.outbox[0]),
        {"answer": "accept", "full_name": "Erin", "password1": PASSWORD, "password2": PASSWORD},
    )

    placeholder.refresh_from_db()
    assert placeholder.check_password(PASSWORD)
    assert AccountMember.objects.filter(account=world.bait, user=placeholder).exists()
