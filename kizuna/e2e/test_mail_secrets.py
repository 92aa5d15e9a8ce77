"""Issue 9.1: mail that carries a secret for its recipient is readable with that secret
only by its recipient, in the local mailbox (the default set-up, no SMTP server).

Every kind of mail Kizuna sends is reviewed here against that rule, and every code path
that builds a message must mark it with its kind (kizuna.identity.mailbox.mark): a new
kind or an unmarked path fails these tests until someone reviews it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from kizuna.crm.mail import extensions
from kizuna.crm.mail.extensions import MergeContext
from kizuna.crm.models import Lead, Membership, Organization, Role
from kizuna.identity.mailbox import HIDDEN, MailKind
from kizuna.identity.models import User
from kizuna.survey.api import services as api_services
from kizuna.survey.models import Survey
from kizuna.testing.personas import PASSWORD, client_for, make_user
from kizuna.testing.worker import run_worker

pytestmark = pytest.mark.django_db

BASE = "http://kizuna.test"
PLACEHOLDER = "[link shown only to the recipient]"
NEW_PASSWORD = "a-brand-new-passphrase-42"  # noqa: S105 - test-only

# Each kind of mail and the secret it carries for its recipient.
REVIEWED_KINDS = {
    MailKind.PASSWORD_RESET: "a link that sets the recipient's password",
    MailKind.CRM_INVITATION: "a link that joins a CRM organization as the recipient's address",
    MailKind.SURVEY_MEMBER_INVITATION: "a link that joins a Survey account as the recipient's "
    "address (and sets its password when it has none here)",
    MailKind.CRM_MESSAGE: "the recipient's unsubscribe link and personal survey links",
}
# Every function that builds a message, with the kinds it sends.
REVIEWED_SENDERS = {
    "kizuna/identity/forms.py:PasswordResetForm.send_mail": {MailKind.PASSWORD_RESET},
    # invite_member and resend_invitation both send through it
    "kizuna/crm/services.py:_send_invitation_email": {MailKind.CRM_INVITATION},
    # invite_members and resend_member_invitation both send through it
    "kizuna/survey/services.py:_send_invitation_email": {MailKind.SURVEY_MEMBER_INVITATION},
    "kizuna/crm/mail/services.py:build_email": {MailKind.CRM_MESSAGE},
}
MAIL_CALLS = {
    "EmailMessage",
    "EmailMultiAlternatives",
    "send_mail",
    "send_mass_mail",
    "mail_admins",
    "mail_managers",
}
ROOT = Path(__file__).resolve().parents[2]


def test_every_kind_of_mail_is_reviewed_against_the_mailbox_rule() -> None:
    assert set(REVIEWED_KINDS) == set(MailKind)


def _callee(node: ast.Call) -> str:
    function = node.func
    if isinstance(function, ast.Attribute):
        return function.attr
    return function.id if isinstance(function, ast.Name) else ""


def _mail_senders() -> dict[str, set[str]]:
    """Every function of the code (tests aside) that builds or sends a message, with the
    kinds of mail it marks (MailKind.X named in a call to mark())."""
    senders: dict[str, set[str]] = {}
    for path in sorted((ROOT / "kizuna").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if any(part in relative for part in ("/tests/", "/migrations/", "/testing/", "/e2e/")):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        scopes: list[tuple[str, ast.AST]] = []
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                scopes += [
                    (f"{node.name}.{item.name}", item)
                    for item in node.body
                    if isinstance(item, ast.FunctionDef)
                ]
            elif isinstance(node, ast.FunctionDef):
                scopes.append((node.name, node))
        for name, function in scopes:
            calls = [node for node in ast.walk(function) if isinstance(node, ast.Call)]
            if not any(_callee(call) in MAIL_CALLS for call in calls):
                continue
            kinds = {
                argument.value.attr
                for call in calls
                if _callee(call) == "mark"
                for argument in call.keywords
                if argument.arg == "kind" and isinstance(argument.value, ast.Attribute)
            }
            senders[f"{relative}:{name}"] = kinds
    return senders


def test_every_code_path_that_sends_mail_marks_its_kind_and_is_reviewed() -> None:
    assert _mail_senders() == {
        sender: {kind.name for kind in kinds} for sender, kinds in REVIEWED_SENDERS.items()
    }


# --- the mail of every kind, through HTTP --------------------------------------------------


@pytest.fixture(autouse=True)
def local_mailbox(tmp_path: Path) -> Iterator[Path]:
    with override_settings(
        EMAIL_BACKEND="kizuna.identity.mailbox.MailboxBackend",
        KIZUNA_MAILBOX_DIR=tmp_path / "mailbox",
        KIZUNA_BASE_URL=BASE,
    ):
        yield tmp_path / "mailbox"


def mailbox_pages(client: Client) -> list[str]:
    """Each message the signed-in user sees in the mailbox, as its page shows it."""
    listing = client.get("/mailbox/")
    assert listing.status_code == 200
    return [
        client.get(reverse("identity:mailbox-message", args=[item["name"]])).content.decode()
        for item in listing.context["messages_list"]
    ]


def only_message(client: Client) -> str:
    [page] = mailbox_pages(client)
    return page


def links_to(page: str, path: str) -> list[str]:
    """The paths of the links to `path...` in a mailbox page (absolute links, host dropped)."""
    found = re.findall(rf"{re.escape(BASE)}({re.escape(path)}[^\s\"'<>&)]*)", page)
    return list(dict.fromkeys(found))


def no_secret_in(page: str, secret_path: str) -> None:
    assert secret_path not in page
    assert HIDDEN not in page  # shown as the translated placeholder


def test_9_1_the_attacker_of_the_issue_no_longer_owns_a_new_address() -> None:
    """Sign up a Survey account, take its SC key, invite a new address through the API, read
    the mailbox as the sender: the link is hidden. The recipient reads it and declines; a
    later CRM invitation to that address is the recipient's alone."""
    mallory = make_user("mallory@example.com", full_name="Mallory")
    attacker = client_for(mallory)
    assert attacker.post(reverse("survey:account-new"), {"name": "Bait"}).status_code == 302
    key = attacker.get(reverse("survey:survey_keys:sc-key")).context["key"]

    invited = attacker.post(
        "/survey/api/v1/members",
        {"emails": ["victim@example.org"]},
        content_type="application/json",
        headers={"X-SC-Email": "mallory@example.com", "X-SC-Key": key},
    )

    assert invited.status_code == 200
    assert [r["status"] for r in invited.json()["results"]] == ["invited"]
    page = only_message(attacker)
    assert "Mallory invites you to the Survey account “Bait”" in page
    no_secret_in(page, "/survey/join/")
    assert PLACEHOLDER in page
    assert "This is your copy as its sender" in page
    assert not User.objects.filter(email="victim@example.org").exists()

    # The owner of the address reads their own mail (in real life in their mail client).
    [link] = links_to(mailbox_for_address("victim@example.org"), "/survey/join/")
    assert Client().post(link, {"answer": "decline"}).status_code == 302
    assert not User.objects.filter(email="victim@example.org").exists()
    assert Client().get(link).status_code == 410

    # Later an administrator of another organization invites the address.
    charlie = make_user("charlie@example.com", full_name="Charlie Sato")
    sato = Organization.objects.create(name="Sato Trading")
    Membership.objects.create(organization=sato, user=charlie, role=Role.ADMINISTRATOR)
    assert (
        client_for(charlie)
        .post(reverse("crm:member-invite"), {"email": "victim@example.org", "role": Role.STANDARD})
        .status_code
        == 302
    )

    assert len(mailbox_pages(attacker)) == 1  # only the copy of the mail Mallory sent
    [crm_link] = links_to(mailbox_for_address("victim@example.org"), "/crm/invitations/")
    recipient = Client()
    joined = recipient.post(
        crm_link,
        {"full_name": "Victor", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert joined.status_code == 302
    victim = User.objects.get(email="victim@example.org")
    assert Membership.objects.filter(organization=sato, user=victim, is_active=True).exists()
    assert not Membership.objects.filter(organization=sato, user=mallory).exists()


def mailbox_for_address(address: str) -> str:
    """The newest message to `address` as its recipient reads it (a user of that address
    made only to read it, then removed: reading mail is no sign-in here)."""
    reader = make_user(address)
    try:
        pages = mailbox_pages(client_for(reader))
    finally:
        reader.delete()
    return pages[0]


def test_9_1_a_crm_invitation_is_hidden_from_the_inviting_administrator() -> None:
    ada = make_user("ada@example.com", full_name="Ada Lovelace")
    demo = Organization.objects.create(name="Kizuna Demo")
    Membership.objects.create(organization=demo, user=ada, role=Role.ADMINISTRATOR)
    bob = make_user("bob@example.com", full_name="Bob Smith")

    client_for(ada).post(
        reverse("crm:member-invite"), {"email": "bob@example.com", "role": Role.STANDARD}
    )

    sender_page = only_message(client_for(ada))
    assert "Invitation to join Kizuna Demo in Kizuna CRM" in sender_page
    no_secret_in(sender_page, "/crm/invitations/")
    assert PLACEHOLDER in sender_page
    recipient = client_for(bob)
    [link] = links_to(only_message(recipient), "/crm/invitations/")
    assert recipient.post(link).status_code == 302
    assert Membership.objects.filter(organization=demo, user=bob).exists()


def test_9_1_a_password_reset_is_read_only_by_its_recipient() -> None:
    bob = make_user("bob@example.com", full_name="Bob Smith")
    other = client_for(make_user("eve@example.com"))

    Client().post("/accounts/password/reset/", {"email": "bob@example.com"})

    assert mailbox_pages(other) == []
    recipient = client_for(bob)
    User.objects.filter(pk=bob.pk).update(last_login=None)  # as above: reading is no sign-in
    page = only_message(recipient)
    # Django's view builds the link from the request's host.
    [link] = set(re.findall(r"http://testserver(/accounts/password/reset/[^\s\"'<>]+/)", page))
    form_url = recipient.get(link).headers["Location"]
    recipient.post(form_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    bob.refresh_from_db()
    assert bob.check_password(NEW_PASSWORD)


@pytest.fixture
def survey_links(db: None) -> Iterator[Survey]:
    """`{{ questionnaire.<id> }}`, a stand-in for the Survey integration's placeholder
    (registered under a name of its own, so the real one is left alone): a personal
    invitation link per recipient, created by the Survey service."""
    owner = make_user("owner@example.com")
    from kizuna.survey.services import create_account

    account = create_account(name="Research", owner=owner)
    survey = Survey.objects.create(
        portal=account.portals.get(), title="Satisfaction", language="en", created_by=owner
    )

    def resolve(context: MergeContext, key: str) -> str:
        reference = f"lead:{context.record.pk}"
        [(invitation, _created)] = api_services.create_invitations(
            survey=Survey.objects.get(pk=int(key)),
            recipients=[api_services.Recipient(recipient_reference=reference)],
        )
        return api_services.invitation_link(invitation)

    extensions.register_placeholder_namespace("questionnaire", resolve=resolve)
    try:
        yield survey
    finally:
        extensions.unregister("questionnaire")


def test_9_1_a_crm_email_with_a_survey_link_hides_it_and_the_unsubscribe_link_from_the_sender(
    survey_links: Survey,
) -> None:
    ada = make_user("ada@example.com", full_name="Ada Lovelace")
    demo = Organization.objects.create(name="Kizuna Demo")
    Membership.objects.create(organization=demo, user=ada, role=Role.ADMINISTRATOR)
    bob = make_user("bob@example.com", full_name="Bob Smith")
    lead = Lead.objects.create(organization=demo, family_name="Smith", email="bob@example.com")
    sender = client_for(ada)

    queued = sender.post(
        reverse("crm_mail:compose"),
        {
            "module": "leads",
            "ids": str(lead.pk),
            "subject": f"Tell us {{{{ questionnaire.{survey_links.pk} }}}}",
            "body_html": f'<p><a href="{{{{ questionnaire.{survey_links.pk} }}}}">Answer</a> and '
            '<a href="https://example.com/about">about us</a></p>',
            "body_text": "",
        },
    )
    assert queued.status_code == 302
    run_worker()

    sender_page = only_message(sender)
    no_secret_in(sender_page, "/s/i/")
    no_secret_in(sender_page, "/crm/mail/unsubscribe/")
    assert 'href="https://example.com/about"' in sender_page
    assert sender_page.count(PLACEHOLDER) >= 4  # subject, both parts, List-Unsubscribe
    recipient = client_for(bob)
    page = only_message(recipient)
    [survey_link] = links_to(page, "/s/i/")
    [unsubscribe] = links_to(page, "/crm/mail/unsubscribe/")
    assert recipient.get(survey_link).status_code == 200
    assert Client().get(unsubscribe).status_code == 200
    assert PLACEHOLDER not in page


def test_9_1_a_message_of_no_reviewed_kind_is_shown_to_its_recipients_only() -> None:
    from django.core.mail import EmailMessage

    ada = make_user("ada@example.com")
    bob = make_user("bob@example.com")
    EmailMessage(
        "Unreviewed", "http://x.test/secret", None, ["bob@example.com"],
        headers={"X-Kizuna-Sent-By": "ada@example.com"},
    ).send()  # fmt: skip

    assert mailbox_pages(client_for(ada)) == []
    assert "http://x.test/secret" in only_message(client_for(bob))


def test_9_1_staff_read_every_message_whole(local_mailbox: Path) -> None:
    make_user("bob@example.com")
    root = User.objects.create_superuser("root@example.com", PASSWORD)

    Client().post("/accounts/password/reset/", {"email": "bob@example.com"})

    page = only_message(client_for(root))
    assert re.search(r"http://testserver/accounts/password/reset/[^\s\"'<>]+/", page)


def test_the_mailbox_page_states_its_purpose_and_limits_in_both_languages() -> None:
    user = make_user("pat@example.com")
    client = client_for(user)

    english = client.get("/mailbox/").content.decode()
    user.language = "ja"
    user.save(update_fields=["language"])
    japanese = client.get("/mailbox/").content.decode()

    assert "an aid for development and demonstrations" in english
    assert "configure an SMTP server (KIZUNA_SMTP_HOST)" in english
    assert "開発とデモ" in japanese
    assert "KIZUNA_SMTP_HOST" in japanese
