import pytest
from django.core.mail import EmailMultiAlternatives

from kizuna.identity import mailbox
from kizuna.identity.mailbox import SENT_BY_HEADER as SENT_BY
from kizuna.identity.mailbox import MailKind


@pytest.fixture
def local_mailbox(settings, tmp_path):
    settings.EMAIL_BACKEND = "kizuna.identity.mailbox.MailboxBackend"
    settings.KIZUNA_MAILBOX_DIR = tmp_path / "mailbox"
    return tmp_path / "mailbox"


def send_sample(sender) -> None:
    message = EmailMultiAlternatives(
        "Hello Bob", "Plain body https://example.com/x", "k@localhost", ["bob@example.com"]
    )
    message.attach_alternative(
        '<p onclick="x()">Rich <script>alert(1)</script>body</p>', "text/html"
    )
    mailbox.mark(message, kind=MailKind.CRM_MESSAGE, sent_by=sender)
    message.send()


def test_mailbox_lists_sent_messages(user, user_client, local_mailbox):
    send_sample(user)

    response = user_client.get("/mailbox/")

    assert response.status_code == 200
    assert "bob@example.com" in response.text
    assert ">Hello Bob</a>" in response.text


def test_mailbox_message_shows_text_and_cleaned_html(user, user_client, local_mailbox):
    send_sample(user)
    [path] = local_mailbox.glob("*.eml")

    response = user_client.get(f"/mailbox/{path.name}/")

    assert response.status_code == 200
    assert "<h1>Hello Bob</h1>" in response.text
    assert "<p>Rich body</p>" in response.text
    assert "<script>" not in response.text
    assert 'href="https://example.com/x"' in response.text


def test_mailbox_is_empty_at_first(user_client, local_mailbox):
    response = user_client.get("/mailbox/")

    assert "The mailbox is empty." in response.text


def test_mailbox_needs_a_signed_in_user(client, user, local_mailbox):
    send_sample(user)

    response = client.get("/mailbox/")

    assert response.status_code == 302
    assert response.headers["Location"] == "/accounts/sign-in/?next=/mailbox/"


def test_mailbox_is_not_found_when_smtp_is_configured(user_client, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"

    assert user_client.get("/mailbox/").status_code == 404


def test_mailbox_message_outside_the_mailbox_is_not_found(user, user_client, local_mailbox):
    send_sample(user)

    assert user_client.get("/mailbox/..%2Fsecret.eml/").status_code == 404
    assert user_client.get("/mailbox/missing.eml/").status_code == 404


def send_to(address: str, subject: str, *, sent_by=None) -> None:
    message = EmailMultiAlternatives(subject, "Body", "k@localhost", [address])
    mailbox.mark(message, kind=MailKind.CRM_MESSAGE, sent_by=sent_by)
    message.send()


def test_mailbox_shows_a_user_the_mail_to_them_and_the_mail_they_sent(
    user, user_client, bob, local_mailbox
):
    send_to("bob@example.com", "Set a new Kizuna password")
    send_to(user.email, "For the user")
    send_to("lead@example.org", "Survey invitation the user sent", sent_by=user)
    send_to("lead@example.org", "Email Bob sent to a lead", sent_by=bob)
    send_to("nobody@example.org", "Sent by nobody in particular")

    response = user_client.get("/mailbox/")

    assert [item["subject"] for item in response.context["messages_list"]] == [
        "Survey invitation the user sent",
        "For the user",
    ]


def test_mail_another_member_sent_to_a_lead_is_not_found(user_client, bob, local_mailbox):
    send_to("lead@example.org", "Join Bob's organization", sent_by=bob)
    [path] = local_mailbox.glob("*.eml")

    response = user_client.get(f"/mailbox/{path.name}/")

    assert response.status_code == 404
    assert b"Join Bob" not in response.content


def test_mailbox_message_of_another_user_is_not_found(user_client, bob, local_mailbox):
    send_to("Bob@Example.com", "Set a new Kizuna password")
    [path] = local_mailbox.glob("*.eml")

    response = user_client.get(f"/mailbox/{path.name}/")

    assert response.status_code == 404
    assert b"Set a new Kizuna password" not in response.content


def test_staff_read_every_message_in_the_mailbox(client, user, bob, local_mailbox):
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client.force_login(user)
    send_to("bob@example.com", "Set a new Kizuna password")
    [path] = local_mailbox.glob("*.eml")

    assert client.get(f"/mailbox/{path.name}/").status_code == 200
    assert len(client.get("/mailbox/").context["messages_list"]) == 1


def test_mailbox_dates_are_shown_in_the_time_zone_and_format_of_the_page(
    user, user_client, local_mailbox
):
    message = EmailMultiAlternatives("Dated", "Body", "k@localhost", ["bob@example.com"])
    message.extra_headers["Date"] = "Mon, 30 Nov 2026 09:04:22 -0000"
    mailbox.mark(message, kind=MailKind.CRM_MESSAGE, sent_by=user)
    message.send()

    english = user_client.get("/mailbox/")
    user.language = "ja"
    user.save(update_fields=["language"])
    japanese = user_client.get("/mailbox/")

    assert "<td>11/30/2026 6:04 PM</td>" in english.text  # Asia/Tokyo is UTC+9
    assert "<td>2026/11/30 18:04</td>" in japanese.text


def test_the_favicon_is_served_for_pages_that_name_none(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 301
    assert response.headers["Location"] == "/static/kizuna/favicon.svg"
    assert client.get("/static/kizuna/favicon.svg").status_code == 200


def send_with_secret(sender, token: str) -> None:
    link = f"https://kizuna.test/join/{token}/"
    message = EmailMultiAlternatives(
        f"Join {link}",
        f"Open {link} (once). Or go to https://kizuna.test/help/.",
        "k@localhost",
        ["bob@example.com"],
        headers={"List-Unsubscribe": f"<https://kizuna.test/u/{token}/>"},
    )
    message.attach_alternative(
        f'<p><a href="{link}">Join</a> <a href="https://kizuna.test/help/">Help</a> {token}</p>',
        "text/html",
    )
    mailbox.mark(message, kind=MailKind.CRM_INVITATION, sent_by=sender, secrets=[token])
    message.send()


def test_the_sender_reads_a_copy_with_every_secret_link_hidden(
    user, user_client, bob, local_mailbox
):
    send_with_secret(user, "tok-SECRET-123")
    [path] = local_mailbox.glob("*.eml")

    page = user_client.get(f"/mailbox/{path.name}/").content.decode()

    assert "tok-SECRET-123" not in page
    assert "<h1>Join [link shown only to the recipient]</h1>" in page
    assert "Open [link shown only to the recipient] (once)." in page
    assert (
        '<p><a rel="noopener noreferrer">Join</a> '
        '<a href="https://kizuna.test/help/" rel="noopener noreferrer">Help</a> '
        "[link shown only to the recipient]</p>"
    ) in page
    assert "<dd>&lt;[link shown only to the recipient]&gt;</dd>" in page
    assert "This is your copy as its sender" in page
    assert "tok-SECRET-123" not in (local_mailbox / "copies" / path.name).read_text()


def test_the_recipient_reads_the_secret_links_whole(bob, local_mailbox, user):
    from kizuna.testing.personas import client_for

    send_with_secret(user, "tok-SECRET-123")
    [path] = local_mailbox.glob("*.eml")

    page = client_for(bob).get(f"/mailbox/{path.name}/").content.decode()

    assert 'href="https://kizuna.test/join/tok-SECRET-123/"' in page
    assert "[link shown only to the recipient]" not in page
    assert "This is your copy as its sender" not in page


def test_a_survey_invitation_link_is_hidden_from_the_sender_even_when_not_declared(
    user, user_client, local_mailbox
):
    message = EmailMultiAlternatives(
        "Survey", "Answer: https://kizuna.test/s/i/abc123/.", "k@localhost", ["lead@x.test"]
    )
    mailbox.mark(message, kind=MailKind.CRM_MESSAGE, sent_by=user)
    message.send()
    [path] = local_mailbox.glob("*.eml")

    page = user_client.get(f"/mailbox/{path.name}/").content.decode()

    assert "abc123" not in page
    assert "Answer: [link shown only to the recipient]." in page


def test_an_unmarked_message_is_not_shown_to_the_sender_it_names(user, user_client, local_mailbox):
    EmailMultiAlternatives(
        "Unreviewed", "Body", "k@localhost", ["lead@x.test"], headers={SENT_BY: user.email}
    ).send()
    [path] = local_mailbox.glob("*.eml")

    assert user_client.get("/mailbox/").context["messages_list"] == []
    assert user_client.get(f"/mailbox/{path.name}/").status_code == 404
    assert not (local_mailbox / "copies" / path.name).exists()
