"""Survey home, account creation and switching, member management (persona matrix)."""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from kizuna.identity.mailbox import SENT_BY_HEADER
from kizuna.identity.models import User
from kizuna.survey.models import AccountMember, MemberRole, Portal, Survey, SurveyAccount
from kizuna.survey.services import create_account
from kizuna.testing.personas import client_for, make_user

# --- home -------------------------------------------------------------------------------------


def test_home_shows_the_administrators_portals_surveys_and_counts(
    ada_client: Client, survey: Survey
) -> None:
    response = ada_client.get(reverse("survey:home"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "My portal" in body
    assert "Customer satisfaction" in body
    assert reverse("survey:members") in body  # admin-only links
    assert reverse("survey:portals") in body


def test_home_for_a_member_hides_administrator_links(bob_client: Client, survey: Survey) -> None:
    response = bob_client.get(reverse("survey:home"))
    assert response.status_code == 200
    assert "Customer satisfaction" in response.content.decode()
    assert reverse("survey:members") not in response.content.decode()


def test_home_for_an_outsider_shows_only_their_own_account(
    carol_client: Client, survey: Survey
) -> None:
    response = carol_client.get(reverse("survey:home"))
    assert response.status_code == 200
    assert "Customer satisfaction" not in response.content.decode()
    assert "Carol&#x27;s Research" in response.content.decode()


def test_home_for_a_user_without_account_offers_to_create_one(user_client: Client) -> None:
    response = user_client.get(reverse("survey:home"))
    assert response.status_code == 200
    assert "Create a Survey account" in response.content.decode()


def test_home_signed_out_redirects_to_sign_in(anonymous_client: Client) -> None:
    response = anonymous_client.get(reverse("survey:home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("identity:login"))


def test_home_is_in_japanese_for_a_japanese_browser(ada_client: Client, survey: Survey) -> None:
    response = ada_client.get(reverse("survey:home"), headers={"accept-language": "ja"})
    assert "アンケート" in response.content.decode()
    assert "回答" in response.content.decode()


# --- creating and switching accounts ----------------------------------------------------------


def test_any_signed_in_user_can_create_an_account_with_a_first_portal(
    user: User, user_client: Client
) -> None:
    response = user_client.post(reverse("survey:account-new"), {"name": "Pat's Polls"})
    assert response.status_code == 302
    account = SurveyAccount.objects.get(name="Pat's Polls")
    member = AccountMember.objects.get(account=account)
    assert (member.user, member.role) == (user, MemberRole.ADMINISTRATOR)
    assert list(account.portals.values_list("name", flat=True)) == ["My portal"]


def test_first_portal_is_named_in_japanese_for_a_japanese_user(db: None) -> None:
    client = client_for(make_user("hana@example.com", language="ja"))
    client.post(reverse("survey:account-new"), {"name": "花の調査"})
    assert Portal.objects.get(account__name="花の調査").name == "マイポータル"


def test_creating_an_account_without_a_name_re_renders_with_an_error(
    user_client: Client,
) -> None:
    response = user_client.post(reverse("survey:account-new"), {"name": "   "})
    assert response.status_code == 400
    assert SurveyAccount.objects.count() == 0


def test_creating_an_account_signed_out_creates_nothing(anonymous_client: Client) -> None:
    response = anonymous_client.post(reverse("survey:account-new"), {"name": "Sneaky"})
    assert response.status_code == 302
    assert not SurveyAccount.objects.filter(name="Sneaky").exists()


def test_a_user_with_two_accounts_can_switch_between_them(
    ada_client: Client, ada: User, survey: Survey
) -> None:
    other = create_account(name="Ada's Second", owner=ada)
    response = ada_client.post(reverse("survey:account-switch"), {"account": other.pk})
    assert response.status_code == 302
    page = ada_client.get(reverse("survey:home")).content.decode()
    assert "Customer satisfaction" not in page
    assert 'name="account"' in page  # the switcher shows with several accounts


def test_switching_to_someone_elses_account_is_404(
    bob_client: Client, carol_account: SurveyAccount
) -> None:
    response = bob_client.post(reverse("survey:account-switch"), {"account": carol_account.pk})
    assert response.status_code == 404


# --- members: persona matrix ---------------------------------------------------------------


def test_members_page_as_administrator_lists_members(
    ada_client: Client, bob_member: AccountMember
) -> None:
    response = ada_client.get(reverse("survey:members"))
    assert response.status_code == 200
    assert "bob@example.com" in response.content.decode()


def test_the_members_page_ends_with_the_form_to_invite_members(ada_client: Client) -> None:
    html = ada_client.get(reverse("survey:members")).content.decode()

    card = html[html.index('<form method="post" class="card narrow">') :]
    assert '<h2 class="card-title">Invite members</h2>' in card
    assert 'name="emails"' in card
    assert '<button type="submit" class="button primary">Invite</button>' in card


def test_members_page_as_member_is_403(bob_client: Client) -> None:
    assert bob_client.get(reverse("survey:members")).status_code == 403


def test_members_page_as_outsider_shows_only_their_account(
    carol_client: Client, bob_member: AccountMember
) -> None:
    response = carol_client.get(reverse("survey:members"))
    assert response.status_code == 200
    assert "bob@example.com" not in response.content.decode()


def test_members_page_without_an_account_is_404(user_client: Client) -> None:
    assert user_client.get(reverse("survey:members")).status_code == 404


def test_members_page_signed_out_redirects(anonymous_client: Client) -> None:
    assert anonymous_client.get(reverse("survey:members")).status_code == 302


def test_administrator_invites_by_email_and_nobody_joins_before_accepting(
    ada_client: Client, account: SurveyAccount, bob: User
) -> None:
    response = ada_client.post(
        reverse("survey:members"),
        {"emails": "bob@example.com, newbie@example.com\nada@example.com", "role": "member"},
        follow=True,
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert (
        "Invited: bob@example.com, newbie@example.com. They become members when they accept."
    ) in body
    assert "Already members: ada@example.com" in body
    assert list(account.members.values_list("user__email", flat=True)) == ["ada@example.com"]
    assert sorted(account.member_invitations.values_list("email", flat=True)) == [
        "bob@example.com",
        "newbie@example.com",
    ]
    assert sorted(m.to[0] for m in mail.outbox) == ["bob@example.com", "newbie@example.com"]
    assert not User.objects.filter(email="newbie@example.com").exists()


def test_adding_an_invalid_email_keeps_what_was_typed_and_adds_nobody(
    ada_client: Client, account: SurveyAccount
) -> None:
    response = ada_client.post(
        reverse("survey:members"), {"emails": "fine@example.com\nbroken", "role": "member"}
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "These are not valid email addresses: broken" in body
    assert "fine@example.com" in body
    assert account.members.count() == 1


def test_an_address_too_long_to_store_is_refused_like_an_invalid_one(
    ada_client: Client, account: SurveyAccount
) -> None:
    # Valid by RFC 5322 parsing, but longer than the 254 characters an email column holds.
    long = ".".join(["a" * 60, "b" * 60, "c" * 60]) + "@" + "d" * 60 + ".example.com"

    response = ada_client.post(
        reverse("survey:members"), {"emails": f"fine@example.com\n{long}", "role": "member"}
    )

    assert response.status_code == 400
    assert f"These are not valid email addresses: {long}" in response.content.decode()
    assert account.members.count() == 1
    assert not account.member_invitations.exists()


def test_a_member_cannot_add_members(bob_client: Client, account: SurveyAccount) -> None:
    response = bob_client.post(
        reverse("survey:members"), {"emails": "x@example.com", "role": "admin"}
    )
    assert response.status_code == 403
    assert not account.member_invitations.exists()
    assert mail.outbox == []


def test_administrator_changes_a_role(ada_client: Client, bob_member: AccountMember) -> None:
    response = ada_client.post(
        reverse("survey:member-role", args=[bob_member.pk]), {"role": "admin"}
    )
    assert response.status_code == 302
    bob_member.refresh_from_db()
    assert bob_member.role == MemberRole.ADMINISTRATOR


def test_the_last_administrator_cannot_demote_themselves(
    ada_client: Client, account: SurveyAccount, ada: User
) -> None:
    ada_member = AccountMember.objects.get(account=account, user=ada)
    response = ada_client.post(
        reverse("survey:member-role", args=[ada_member.pk]), {"role": "member"}, follow=True
    )
    assert "at least one administrator" in response.content.decode()
    ada_member.refresh_from_db()
    assert ada_member.role == MemberRole.ADMINISTRATOR


def test_a_member_cannot_change_roles(bob_client: Client, bob_member: AccountMember) -> None:
    response = bob_client.post(
        reverse("survey:member-role", args=[bob_member.pk]), {"role": "admin"}
    )
    assert response.status_code == 403
    bob_member.refresh_from_db()
    assert bob_member.role == MemberRole.MEMBER


def test_an_outsider_cannot_change_roles_of_another_account(
    carol_client: Client, bob_member: AccountMember
) -> None:
    response = carol_client.post(
        reverse("survey:member-role", args=[bob_member.pk]), {"role": "admin"}
    )
    assert response.status_code == 404
    bob_member.refresh_from_db()
    assert bob_member.role == MemberRole.MEMBER


def test_signed_out_cannot_change_roles(
    anonymous_client: Client, bob_member: AccountMember
) -> None:
    response = anonymous_client.post(
        reverse("survey:member-role", args=[bob_member.pk]), {"role": "admin"}
    )
    assert response.status_code == 302
    bob_member.refresh_from_db()
    assert bob_member.role == MemberRole.MEMBER


def test_administrator_removes_a_member(ada_client: Client, bob_member: AccountMember) -> None:
    response = ada_client.post(reverse("survey:member-remove", args=[bob_member.pk]))
    assert response.status_code == 302
    assert not AccountMember.objects.filter(pk=bob_member.pk).exists()
    assert User.objects.filter(email="bob@example.com").exists()  # the user stays


def test_the_last_administrator_cannot_be_removed(
    ada_client: Client, account: SurveyAccount, ada: User
) -> None:
    ada_member = AccountMember.objects.get(account=account, user=ada)
    response = ada_client.post(reverse("survey:member-remove", args=[ada_member.pk]), follow=True)
    assert "The last administrator cannot be removed" in response.content.decode()
    assert AccountMember.objects.filter(pk=ada_member.pk).exists()


@pytest.mark.parametrize(("persona", "status"), [("bob", 403), ("carol", 404), ("anonymous", 302)])
def test_only_an_administrator_of_the_account_can_remove_members(
    request: pytest.FixtureRequest, persona: str, status: int, bob_member: AccountMember
) -> None:
    client: Client = request.getfixturevalue(f"{persona}_client")
    response = client.post(reverse("survey:member-remove", args=[bob_member.pk]))
    assert response.status_code == status
    assert AccountMember.objects.filter(pk=bob_member.pk).exists()


def test_administrator_sends_an_invitation_again_with_a_new_link(
    ada_client: Client, account: SurveyAccount
) -> None:
    ada_client.post(reverse("survey:members"), {"emails": "late@example.com", "role": "member"})
    invitation = account.member_invitations.get(email="late@example.com")

    response = ada_client.post(reverse("survey:member-invitation-resend", args=[invitation.pk]))

    assert response.status_code == 302
    assert [m.to for m in mail.outbox] == [["late@example.com"], ["late@example.com"]]
    [first_link, second_link] = [
        line for m in mail.outbox for line in m.body.splitlines() if "/survey/join/" in line
    ]
    assert first_link != second_link
    assert Client().get(first_link.split("testserver", 1)[-1]).status_code == 410
    assert account.member_invitations.get().expires_at >= invitation.expires_at


def test_a_resent_invitation_names_the_administrator_who_resent_it(
    ada_client: Client, account: SurveyAccount, bob: User
) -> None:
    AccountMember.objects.create(account=account, user=bob, role=MemberRole.ADMINISTRATOR)
    ada_client.post(reverse("survey:members"), {"emails": "late@example.com", "role": "member"})
    invitation = account.member_invitations.get(email="late@example.com")

    client_for(bob).post(reverse("survey:member-invitation-resend", args=[invitation.pk]))

    assert [m.extra_headers[SENT_BY_HEADER] for m in mail.outbox] == [
        "ada@example.com",
        "bob@example.com",
    ]
    assert "Bob" in mail.outbox[1].subject


@pytest.mark.parametrize("action", ["member-invitation-resend", "member-invitation-withdraw"])
@pytest.mark.parametrize(("persona", "status"), [("bob", 403), ("carol", 404), ("anonymous", 302)])
def test_only_an_administrator_of_the_account_can_resend_or_withdraw_invitations(
    request: pytest.FixtureRequest,
    persona: str,
    status: int,
    action: str,
    account: SurveyAccount,
    bob_member: AccountMember,
    ada: User,
) -> None:
    from kizuna.survey.services import invite_members

    invite_members(account=account, emails=["late@example.com"], by=ada)
    invitation = account.member_invitations.get()
    mail.outbox.clear()
    client: Client = request.getfixturevalue(f"{persona}_client")

    assert client.post(reverse(f"survey:{action}", args=[invitation.pk])).status_code == status

    assert mail.outbox == []
    assert account.member_invitations.get().token_hash == invitation.token_hash


def test_new_account_page_for_a_member_of_an_account(bob_client: Client) -> None:
    response = bob_client.get(reverse("survey:account-new"))
    assert response.status_code == 200
    assert "New Survey account" in response.content.decode()


def test_new_account_page_signed_out_redirects(anonymous_client: Client) -> None:
    assert anonymous_client.get(reverse("survey:account-new")).status_code == 302
