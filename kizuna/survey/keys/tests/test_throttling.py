"""SC-key throttling (issue 9): guessing is slowed, and a valid key is never locked out.

Failed attempts are counted per address and email, and per address (five times the
per-email limit); successes are not counted. A caller past a limit gets 429 for its
failures only: whoever sends a real key gets its answer whatever others did, even
from the same address (a CRM serving many accounts, every client behind one proxy).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from kizuna.survey.keys import services
from kizuna.survey.keys.models import ServiceKey

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("_limit_of_three")]

ACCOUNT = "/survey/api/v1/account"
PROXY = "198.51.100.1"  # every caller of these tests shares it, as behind a proxy
ELSEWHERE = "203.0.113.9"
PER_EMAIL_MESSAGE = (
    "Too many failed attempts for this email address from your network address. Try again "
    "in 15 minutes; a correct SC key is accepted meanwhile."
)
PER_ADDRESS_MESSAGE = (
    "Too many failed attempts from your network address. Try again in 15 minutes; a correct "
    "SC key is accepted meanwhile."
)


@pytest.fixture
def _limit_of_three():
    with override_settings(KIZUNA_SC_KEY_MAX_FAILURES=3, KIZUNA_SC_KEY_WINDOW_SECONDS=900):
        yield


def call(client: Client, headers: dict[str, Any], address: str = PROXY) -> tuple[int, str]:
    response = client.get(ACCOUNT, REMOTE_ADDR=address, **headers)
    if response.status_code == 200:
        return 200, response.json()["email"]
    return response.status_code, response.json()["error"]["code"]


def guess(email: str, key: str = "sck_guess") -> dict[str, Any]:
    return {"HTTP_X_SC_EMAIL": email, "HTTP_X_SC_KEY": key}


def test_wrong_keys_for_an_email_are_answered_429_past_the_limit(
    client: Client, ada_member, ada_sc_headers
):
    codes = [call(client, guess("ada@example.com", f"sck_guess{n}")) for n in range(4)]

    assert codes == [(401, "wrong_key")] * 3 + [(429, "throttled")]
    response = client.get(ACCOUNT, REMOTE_ADDR=PROXY, **guess("ada@example.com"))
    assert response.json()["error"]["message"] == PER_EMAIL_MESSAGE
    assert response["Retry-After"] == "900"


def test_a_valid_key_is_never_locked_out_by_wrong_keys_for_its_own_email(
    client: Client, ada_member, ada_sc_headers
):
    for n in range(5):
        call(client, guess("ada@example.com", f"sck_guess{n}"))
    assert call(client, guess("ada@example.com")) == (429, "throttled")

    assert call(client, ada_sc_headers) == (200, "ada@example.com")
    assert call(client, ada_sc_headers) == (200, "ada@example.com")


def test_a_valid_key_is_never_locked_out_by_guesses_for_made_up_emails_from_its_address(
    client: Client, ada_member, ada_sc_headers, carol_member, carol_sc_headers
):
    codes = [call(client, guess(f"made-up{n}@example.com")) for n in range(16)]

    assert codes == [(401, "unknown_email")] * 15 + [(429, "throttled")]
    assert call(client, ada_sc_headers) == (200, "ada@example.com")
    assert call(client, carol_sc_headers) == (200, "carol@example.com")


def test_past_the_address_limit_every_failure_from_it_is_429_and_says_so(
    client: Client, ada_member, ada_sc_headers
):
    for n in range(15):
        call(client, guess(f"made-up{n}@example.com"))

    # Neither another email nor another key tells a guesser anything more.
    response = client.get(ACCOUNT, REMOTE_ADDR=PROXY, **guess("ada@example.com"))
    assert (response.status_code, response.json()["error"]) == (
        429,
        {"code": "throttled", "message": PER_ADDRESS_MESSAGE, "fields": {}},
    )
    assert call(client, guess("new@example.com")) == (429, "throttled")
    # Another address is not slowed by this one's failures.
    assert call(client, guess("ada@example.com"), address=ELSEWHERE) == (401, "wrong_key")


def test_the_429_message_is_in_the_callers_language(client: Client, ada_member):
    for n in range(3):
        call(client, guess("ada@example.com", f"sck_guess{n}"))

    response = client.get(
        ACCOUNT, REMOTE_ADDR=PROXY, HTTP_ACCEPT_LANGUAGE="ja", **guess("ada@example.com")
    )

    assert response.json()["error"]["message"] == (
        "お使いのネットワークアドレスから、このメールアドレスでの認証失敗が多すぎます。"
        "15分後に再度お試しください。その間も正しいSCキーは受け付けます。"
    )


def test_the_holder_of_a_revoked_key_is_told_to_reconnect_even_past_the_limit(
    client: Client, ada_member, ada_sc_headers
):
    services.regenerate_key(member=ada_member, by=ada_member.user)
    for n in range(15):
        call(client, guess(f"made-up{n}@example.com"))

    codes = [call(client, ada_sc_headers) for _ in range(4)]

    assert codes == [(401, "revoked_key")] * 4


def test_successes_neither_count_nor_forgive_failures(client: Client, ada_member, ada_sc_headers):
    for n in range(2):
        assert call(client, guess("ada@example.com", f"sck_guess{n}")) == (401, "wrong_key")
        assert call(client, ada_sc_headers) == (200, "ada@example.com")
    for _ in range(10):
        assert call(client, ada_sc_headers) == (200, "ada@example.com")

    assert call(client, guess("ada@example.com")) == (401, "wrong_key")
    assert call(client, guess("ada@example.com")) == (429, "throttled")


def test_the_per_email_limit_counts_that_email_only(
    client: Client, ada_member, carol_member, carol_sc_headers
):
    for n in range(3):
        call(client, guess("ada@example.com", f"sck_guess{n}"))

    assert call(client, guess("carol@example.com")) == (401, "wrong_key")
    assert call(client, guess("ADA@example.com ")) == (429, "throttled")


def test_a_valid_key_sent_while_throttled_records_its_use(
    client: Client, ada_member, ada_sc_headers
):
    for n in range(15):
        call(client, guess(f"made-up{n}@example.com"))

    assert call(client, ada_sc_headers) == (200, "ada@example.com")

    assert ServiceKey.objects.get(member=ada_member).last_used_at is not None


def test_a_window_of_a_minute_says_one_minute(client: Client, ada_member, settings):
    settings.KIZUNA_SC_KEY_WINDOW_SECONDS = 60
    for n in range(3):
        call(client, guess("ada@example.com", f"sck_{n}"))

    response = client.get(ACCOUNT, REMOTE_ADDR=PROXY, **guess("ada@example.com"))

    assert response.json()["error"]["message"] == (
        "Too many failed attempts for this email address from your network address. Try again "
        "in 1 minute; a correct SC key is accepted meanwhile."
    )
    assert response["Retry-After"] == "60"


def test_a_window_of_61_seconds_is_rounded_up_to_2_minutes(client: Client, ada_member, settings):
    settings.KIZUNA_SC_KEY_WINDOW_SECONDS = 61
    for n in range(3):
        call(client, guess("ada@example.com", f"sck_{n}"))

    response = client.get(ACCOUNT, REMOTE_ADDR=PROXY, **guess("ada@example.com"))

    assert "Try again in 2 minutes;" in response.json()["error"]["message"]


def test_once_the_window_is_over_failures_are_answered_again(
    client: Client, ada_member, monkeypatch
):
    for n in range(15):
        call(client, guess(f"made-up{n}@example.com"))
    assert call(client, guess("ada@example.com")) == (429, "throttled")

    # The shared cache (the database) sees the window end.
    later = timezone.now() + timedelta(seconds=901)
    monkeypatch.setattr("django.core.cache.backends.db.tz_now", lambda: later)

    assert call(client, guess("ada@example.com")) == (401, "wrong_key")
    assert call(client, guess("made-up0@example.com")) == (401, "unknown_email")


def test_the_window_starts_with_the_first_failure_and_later_failures_do_not_move_it(
    client: Client, ada_member, monkeypatch
):
    start = timezone.now()
    for n in range(3):
        call(client, guess("ada@example.com", f"sck_{n}"))

    # Ten minutes later the 15-minute window still holds, and a failure then does not
    # extend it.
    monkeypatch.setattr(
        "django.core.cache.backends.db.tz_now", lambda: start + timedelta(minutes=10)
    )
    assert call(client, guess("ada@example.com")) == (429, "throttled")
    monkeypatch.setattr(
        "django.core.cache.backends.db.tz_now", lambda: start + timedelta(seconds=905)
    )
    assert call(client, guess("ada@example.com")) == (401, "wrong_key")


def test_the_address_limit_says_so_with_one_minute_and_in_japanese(
    client: Client, ada_member, settings
):
    settings.KIZUNA_SC_KEY_WINDOW_SECONDS = 60
    for n in range(15):
        call(client, guess(f"made-up{n}@example.com"))

    english = client.get(ACCOUNT, REMOTE_ADDR=PROXY, **guess("ada@example.com"))
    japanese = client.get(
        ACCOUNT, REMOTE_ADDR=PROXY, HTTP_ACCEPT_LANGUAGE="ja", **guess("ada@example.com")
    )

    assert english.json()["error"]["message"] == (
        "Too many failed attempts from your network address. Try again in 1 minute; a correct "
        "SC key is accepted meanwhile."
    )
    assert japanese.json()["error"]["message"] == (
        "お使いのネットワークアドレスからの認証失敗が多すぎます。1分後に再度お試しください。"
        "その間も正しいSCキーは受け付けます。"
    )
