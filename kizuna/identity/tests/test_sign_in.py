from datetime import timedelta

import pytest
from django.contrib.auth.signals import user_login_failed
from django.test import Client
from django.utils import timezone

from kizuna.identity.models import SignInFailure, User
from kizuna.testing.personas import PASSWORD

URL = "/accounts/sign-in/"


@pytest.fixture(autouse=True)
def _throttle_settings(settings):
    settings.KIZUNA_SIGNIN_MAX_FAILURES = 5
    settings.KIZUNA_SIGNIN_WINDOW_SECONDS = 900


def sign_in(client: Client, email: str, password: str, address: str = "203.0.113.7", **extra):
    return client.post(URL, {"username": email, "password": password}, REMOTE_ADDR=address, **extra)


def fail(client: Client, email: str, times: int, address: str = "203.0.113.7") -> None:
    for _ in range(times):
        assert sign_in(client, email, "wrong password", address).status_code == 200


def test_sign_in_page_shows_the_form_in_english(client, db):
    response = client.get(URL)

    assert response.status_code == 200
    assert response.headers["Content-Language"] == "en"
    assert "<h1>Sign in</h1>" in response.text
    assert 'type="email" name="username"' in response.text
    assert 'href="/accounts/password/reset/"' in response.text


def test_sign_in_with_email_and_password_signs_in_and_redirects_home(client, user):
    response = sign_in(client, "pat@example.com", PASSWORD)

    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert client.session["_auth_user_id"] == str(user.pk)


def test_sign_in_ignores_the_case_of_the_email(client, user):
    response = sign_in(client, "Pat@Example.COM", PASSWORD)

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


def test_sign_in_follows_a_safe_next_url_only(client, user):
    safe = client.post(
        URL + "?next=/mailbox/", {"username": user.email, "password": PASSWORD, "next": "/mailbox/"}
    )
    client.logout()
    unsafe = client.post(
        URL, {"username": user.email, "password": PASSWORD, "next": "https://evil.example/"}
    )

    assert safe.headers["Location"] == "/mailbox/"
    assert unsafe.headers["Location"] == "/"


def test_wrong_password_is_refused_and_recorded_as_a_failure(client, user):
    response = sign_in(client, "pat@example.com", "wrong password")

    assert response.status_code == 200
    assert "The email address or the password is wrong." in response.text
    assert "_auth_user_id" not in client.session
    assert list(SignInFailure.objects.values_list("email", "address")) == [
        ("pat@example.com", "203.0.113.7")
    ]


def test_unknown_email_is_refused_with_the_same_message_and_recorded(client, db):
    response = sign_in(client, "Nobody@Example.com", "whatever")

    assert "The email address or the password is wrong." in response.text
    assert list(SignInFailure.objects.values_list("email", "address")) == [
        ("nobody@example.com", "203.0.113.7")
    ]


def test_inactive_user_cannot_sign_in(client, user):
    user.is_active = False
    user.save(update_fields=["is_active"])

    response = sign_in(client, user.email, PASSWORD)

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_an_empty_form_is_not_a_failure(client, db):
    response = client.post(URL, {"username": "", "password": ""})

    assert response.status_code == 200
    assert response.text.count('class="error"') == 2
    assert SignInFailure.objects.count() == 0


def test_signin_is_throttled_after_five_failures_for_same_email_and_address(client, user):
    fail(client, user.email, 5)

    response = sign_in(client, user.email, PASSWORD)

    assert response.status_code == 429
    assert (
        "Too many failed sign-ins for this email address from your network. "
        "Wait 15 minutes, then try again."
    ) in response.text
    assert "_auth_user_id" not in client.session


def test_four_failures_do_not_throttle(client, user):
    fail(client, user.email, 4)

    response = sign_in(client, user.email, PASSWORD)

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


def test_throttled_attempt_never_checks_the_password_nor_counts_as_a_failure(client, user):
    # Django sends user_login_failed whenever it checks a wrong password.
    checked: list[str] = []

    def on_password_checked(sender, credentials, **kwargs):
        checked.append(credentials["username"])

    user_login_failed.connect(on_password_checked)
    try:
        fail(client, user.email, 5)
        assert checked == [user.email] * 5

        response = sign_in(client, user.email, "wrong password")
    finally:
        user_login_failed.disconnect(on_password_checked)

    assert response.status_code == 429
    assert checked == [user.email] * 5
    assert SignInFailure.objects.count() == 5


def test_throttle_is_per_address(client, user):
    fail(client, user.email, 5, address="203.0.113.7")

    response = sign_in(client, user.email, PASSWORD, address="198.51.100.2")

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


def test_throttle_is_per_email(client, user, bob):
    fail(client, bob.email, 5)

    response = sign_in(client, user.email, PASSWORD)

    assert response.status_code == 302


def test_throttle_counts_the_email_case_insensitively(client, user):
    fail(client, "PAT@example.com", 5)

    response = sign_in(client, "pat@EXAMPLE.com", PASSWORD)

    assert response.status_code == 429


def test_throttle_ends_when_failures_leave_the_window(client, user):
    long_ago = timezone.now() - timedelta(seconds=901)
    for _ in range(5):
        SignInFailure.objects.create(email=user.email, address="203.0.113.7", failed_at=long_ago)

    response = sign_in(client, user.email, PASSWORD)

    assert response.status_code == 302


def test_throttle_wait_counts_from_the_failure_that_will_expire_first(client, user):
    now = timezone.now()
    for minutes_ago in (20, 10, 4, 3, 2, 1):  # the 20-minute-old one is outside the window
        SignInFailure.objects.create(
            email=user.email, address="203.0.113.7", failed_at=now - timedelta(minutes=minutes_ago)
        )

    response = sign_in(client, user.email, PASSWORD)

    # The five in the window are 10, 4, 3, 2 and 1 minutes old: the oldest frees up in 5.
    assert response.status_code == 429
    assert "Wait 5 minutes, then try again." in response.text


def test_throttle_says_one_minute_in_the_singular(client, user):
    now = timezone.now()
    for seconds_ago in (850, 10, 9, 8, 7):
        SignInFailure.objects.create(
            email=user.email, address="203.0.113.7", failed_at=now - timedelta(seconds=seconds_ago)
        )

    response = sign_in(client, user.email, PASSWORD)

    assert "Wait 1 minute, then try again." in response.text


def test_throttle_message_is_in_japanese_for_a_japanese_browser(client, user):
    fail(client, user.email, 5)

    response = sign_in(client, user.email, PASSWORD, HTTP_ACCEPT_LANGUAGE="ja")

    assert response.status_code == 429
    assert (
        "このメールアドレスで、お使いのネットワークからのサインイン失敗が多すぎます。"
        "15 分待ってから、もう一度お試しください。"
    ) in response.text


def test_successful_sign_in_clears_that_pairs_failures_only(client, user):
    fail(client, user.email, 4, address="203.0.113.7")
    fail(client, user.email, 2, address="198.51.100.2")
    fail(client, "someone@example.com", 1, address="203.0.113.7")

    sign_in(client, user.email, PASSWORD, address="203.0.113.7")

    assert sorted(SignInFailure.objects.values_list("email", "address")) == [
        ("pat@example.com", "198.51.100.2"),
        ("pat@example.com", "198.51.100.2"),
        ("someone@example.com", "203.0.113.7"),
    ]


def test_recording_a_failure_drops_failures_older_than_the_window(client, db):
    old = SignInFailure.objects.create(
        email="old@example.com",
        address="192.0.2.1",
        failed_at=timezone.now() - timedelta(seconds=1000),
    )

    fail(client, "new@example.com", 1)

    assert not SignInFailure.objects.filter(pk=old.pk).exists()
    assert SignInFailure.objects.count() == 1


def test_signed_in_user_visiting_sign_in_is_sent_home(user_client):
    response = user_client.get(URL)

    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_users_are_created_with_lowercase_email(db):
    user = User.objects.create_user("Mixed@Example.COM", PASSWORD)

    assert user.email == "mixed@example.com"


def test_sign_in_sets_the_language_cookie_to_the_users_language(client, user):
    user.language = "ja"
    user.save(update_fields=["language"])
    client.cookies["kizuna_language"] = "en"

    sign_in(client, user.email, PASSWORD)

    assert client.cookies["kizuna_language"].value == "ja"


def test_sign_in_leaves_the_language_cookie_alone_for_a_user_following_the_browser(client, user):
    client.cookies["kizuna_language"] = "ja"

    response = sign_in(client, user.email, PASSWORD)

    assert "kizuna_language" not in response.cookies
    assert client.cookies["kizuna_language"].value == "ja"


def test_a_request_without_a_peer_address_is_throttled_under_a_placeholder(client, user):
    fail(client, user.email, 5, address="")

    response = sign_in(client, user.email, PASSWORD, address="")

    assert response.status_code == 429
    assert set(SignInFailure.objects.values_list("address", flat=True)) == {"0.0.0.0"}  # noqa: S104
