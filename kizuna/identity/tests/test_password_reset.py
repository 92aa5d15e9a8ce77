import re

import pytest
from django.core import mail
from django.test import override_settings

from kizuna.config import Rate
from kizuna.identity import mailbox
from kizuna.testing.personas import PASSWORD, make_user

NEW_PASSWORD = "a-brand-new-passphrase-42"


def reset_link(body) -> str:
    match = re.search(r"http://testserver(/accounts/password/reset/[^/\s]+/[^/\s]+/)", body)
    assert match, body
    return match.group(1)


def test_password_reset_page_asks_for_the_email(client, db):
    response = client.get("/accounts/password/reset/")

    assert response.status_code == 200
    assert 'name="email"' in response.text


def test_password_reset_sends_one_email_with_a_working_link(client, user):
    response = client.post("/accounts/password/reset/", {"email": "pat@example.com"})

    assert response.status_code == 302
    assert response.headers["Location"] == "/accounts/password/reset/sent/"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["pat@example.com"]
    assert message.subject == "Set a new Kizuna password"
    assert message.body.startswith("Hello Pat Example,\n\n")

    form_url = client.get(reset_link(message.body)).headers["Location"]
    response = client.post(
        form_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}, follow=True
    )

    user.refresh_from_db()
    assert response.redirect_chain == [("/accounts/sign-in/", 302)]
    assert "Your password is set. Sign in with it now." in response.text
    assert user.check_password(NEW_PASSWORD)


def test_password_reset_for_an_unknown_email_sends_nothing_and_looks_the_same(client, db):
    response = client.post("/accounts/password/reset/", {"email": "nobody@example.com"})

    assert response.status_code == 302
    assert response.headers["Location"] == "/accounts/password/reset/sent/"
    assert mail.outbox == []


def test_password_reset_link_works_only_once(client, user):
    client.post("/accounts/password/reset/", {"email": user.email})
    link = reset_link(mail.outbox[0].body)
    form_url = client.get(link).headers["Location"]
    client.post(form_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})

    response = client.get(link, follow=True)

    assert "This link is invalid or has already been used. Ask for a new one." in response.text
    assert 'name="new_password1"' not in response.text


def test_password_reset_with_a_forged_token_changes_nothing(client, user):
    client.post("/accounts/password/reset/", {"email": user.email})
    uid = reset_link(mail.outbox[0].body).split("/")[-3]

    response = client.post(
        f"/accounts/password/reset/{uid}/set-password/",
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    user.refresh_from_db()
    assert "This link is invalid or has already been used." in response.text
    assert user.check_password(PASSWORD)


def test_password_reset_email_is_in_the_recipients_language(client, db):
    make_user("hanako@example.com", full_name="山田花子", language="ja")

    client.post("/accounts/password/reset/", {"email": "hanako@example.com"})

    assert mail.outbox[0].subject == "Kizuna の新しいパスワードを設定"
    assert mail.outbox[0].body.startswith("山田花子 様\n\n")


def test_password_reset_email_follows_the_browser_when_the_user_chose_no_language(client, user):
    client.post(
        "/accounts/password/reset/", {"email": user.email}, HTTP_ACCEPT_LANGUAGE="ja,en;q=0.5"
    )

    assert mail.outbox[0].subject == "Kizuna の新しいパスワードを設定"


@pytest.fixture
def local_mailbox(settings, tmp_path):
    settings.EMAIL_BACKEND = "kizuna.identity.mailbox.MailboxBackend"
    settings.KIZUNA_MAILBOX_DIR = tmp_path / "mailbox"


def test_password_reset_email_lands_in_the_local_mailbox(client, user, local_mailbox):
    client.post("/accounts/password/reset/", {"email": user.email})

    [summary] = mailbox.list_messages()
    message = mailbox.read_message(summary["name"])
    assert summary["to"] == "pat@example.com"
    assert summary["subject"] == "Set a new Kizuna password"
    assert message is not None
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    assert "/accounts/password/reset/" in body.get_content()


def test_password_reset_sent_page_points_to_the_local_mailbox(client, db, local_mailbox):
    response = client.get("/accounts/password/reset/sent/")

    assert response.status_code == 200
    assert "<h1>Check your email</h1>" in response.text
    assert "the email is in the local mailbox of this installation." in response.text


def test_password_reset_sent_page_says_nothing_of_a_mailbox_when_smtp_is_set(client, settings, db):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"

    response = client.get("/accounts/password/reset/sent/")

    assert "<h1>Check your email</h1>" in response.text
    assert "local mailbox" not in response.text


def test_an_invited_person_without_a_password_can_set_one_through_forgot_password(client, db):
    invited = make_user("invited@example.com")
    invited.set_unusable_password()
    invited.save(update_fields=["password"])

    client.post("/accounts/password/reset/", {"email": "Invited@Example.com"})
    [message] = mail.outbox
    form_url = client.get(reset_link(message.body)).headers["Location"]
    client.post(form_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})

    invited.refresh_from_db()
    assert message.to == ["invited@example.com"]
    assert invited.check_password(NEW_PASSWORD)


def test_a_user_whose_password_was_disabled_after_signing_in_gets_no_reset_email(client, db):
    disabled = make_user("disabled@example.com")
    disabled.last_login = disabled.date_joined
    disabled.set_unusable_password()
    disabled.save(update_fields=["password", "last_login"])

    response = client.post("/accounts/password/reset/", {"email": "disabled@example.com"})

    assert response.status_code == 302
    assert mail.outbox == []


# --- rate limits: per client address and per email, answered like a sent email ------------


def ask_for_resets(client, emails, address="198.51.100.7"):
    """POST one reset request per email from `address`; the answers' redirect targets."""
    return [
        client.post("/accounts/password/reset/", {"email": email}, REMOTE_ADDR=address).headers[
            "Location"
        ]
        for email in emails
    ]


def mails_to(email: str) -> int:
    return sum(1 for summary in mailbox.list_messages() if summary["to"] == email)


def test_ten_reset_requests_for_one_email_send_three_mails_and_all_look_sent(
    client, user, local_mailbox
):
    answers = ask_for_resets(client, ["pat@example.com"] * 10)

    assert answers == ["/accounts/password/reset/sent/"] * 10
    assert mails_to("pat@example.com") == 3
    assert len(mailbox.list_messages()) == 3


def test_the_email_limit_counts_every_spelling_of_one_address_and_every_client(
    client, user, local_mailbox
):
    ask_for_resets(client, ["pat@example.com", "PAT@example.com"], address="198.51.100.7")
    ask_for_resets(client, [" Pat@Example.com ", "pat@example.com"], address="203.0.113.9")

    assert mails_to("pat@example.com") == 3


@override_settings(KIZUNA_PASSWORD_RESET_ADDRESS_RATE=Rate(4, 3600))
def test_one_client_asking_for_many_emails_is_limited_and_others_are_not(client, db, local_mailbox):
    emails = [f"person{number}@example.com" for number in range(6)]
    for email in emails:
        make_user(email)

    answers = ask_for_resets(client, emails, address="198.51.100.7")
    ask_for_resets(client, ["person5@example.com"], address="203.0.113.9")

    assert answers == ["/accounts/password/reset/sent/"] * 6
    assert [mails_to(email) for email in emails] == [1, 1, 1, 1, 0, 1]


def test_requests_for_unknown_emails_count_and_answer_like_known_ones(client, user, local_mailbox):
    unknown = ask_for_resets(client, ["nobody@example.com"] * 4)
    known = ask_for_resets(client, ["pat@example.com"] * 4)

    assert unknown == known == ["/accounts/password/reset/sent/"] * 4
    assert [summary["to"] for summary in mailbox.list_messages()] == ["pat@example.com"] * 3


def test_the_sent_page_says_only_a_few_emails_are_sent_per_hour(client, db):
    response = client.get("/accounts/password/reset/sent/", HTTP_ACCEPT_LANGUAGE="ja")

    assert (
        "同じアドレスに送るメールは 1 時間に数通までのため、"
        "すぐに再度お申し込みいただいても送信されないことがあります。"
    ) in response.text
