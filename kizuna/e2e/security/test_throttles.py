"""Issue 9, Tests: every throttle against "a valid credential is never locked out by someone
else's failures".

Every throttle of the code is listed in THROTTLES with what it limits; a new one (a
`KIZUNA_..._RATE` or `..._MAX_FAILURES` setting, or a scope counted with kizuna.lib.ratelimit)
fails test_every_throttle_of_the_code_is_reviewed until it is listed here, with a test
through HTTP when it guards a credential.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client, override_settings

from kizuna.config import Rate
from kizuna.identity.models import User
from kizuna.survey.keys.services import get_or_create_key
from kizuna.survey.models import AccountMember, Invitation, Survey
from kizuna.survey.services import create_account
from kizuna.testing.personas import PASSWORD, make_user

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[3]
EVE = "203.0.113.66"  # an attacker's address
ADA = "198.51.100.7"  # the holder of the valid credential, elsewhere
SHARED = "127.0.0.1"  # one address for both: a co-deployed CRM, clients behind one proxy
TRUST_TOKEN = "the-deployment-trust-token-of-this-test-0123456789"  # noqa: S105 - test-only

# Each throttle's setting, what it limits, and how a valid credential fares.
THROTTLES = {
    "KIZUNA_SIGNIN_MAX_FAILURES": "failed sign-ins per (email, address): other addresses still "
    "sign in (test_sign_in_...)",
    "KIZUNA_PASSWORD_RESET_ADDRESS_RATE": "reset emails per address: links already sent keep "
    "working, the password still signs in (test_password_reset_...)",
    "KIZUNA_PASSWORD_RESET_EMAIL_RATE": "reset emails per email: as above",
    "KIZUNA_SC_KEY_MAX_FAILURES": "wrong SC keys per (email, address) and per address: a valid "
    "key is checked first and always accepted (test_sc_key_...)",
    "KIZUNA_TRUST_TOKEN_MAX_FAILURES": "wrong trust tokens per address: the right token is "
    "checked first and always accepted (test_trust_token_...)",
    "KIZUNA_SURVEY_SUBMIT_RATE": "anonymous survey submissions per address; no credential "
    "(many respondents behind one address: README, Throttling)",
    "KIZUNA_SURVEY_UNKNOWN_LINK_RATE": "links to no survey or invitation per address: a link "
    "that exists is looked up first and always answered (test_survey_unknown_link_...)",
    "KIZUNA_SURVEY_PAGE_RATE": "anonymous page moves (Next, Back) per address; no credential "
    "(kizuna/survey/tests/test_response_progress_bounds.py)",
    "KIZUNA_SURVEY_MEMBER_INVITATION_RATE": "invitation emails per Survey account; no credential, "
    "only the account's own administrators count against it "
    "(survey/tests/test_member_invitations.py)",
}
# The scopes counted with kizuna.lib.ratelimit, by the setting they belong to.
RATELIMIT_SCOPES = {
    "password-reset:address": "KIZUNA_PASSWORD_RESET_ADDRESS_RATE",
    "password-reset:email": "KIZUNA_PASSWORD_RESET_EMAIL_RATE",
    "trust-token-failures": "KIZUNA_TRUST_TOKEN_MAX_FAILURES",
    "survey-submit": "KIZUNA_SURVEY_SUBMIT_RATE",
    "survey-page": "KIZUNA_SURVEY_PAGE_RATE",
    "survey-unknown-link": "KIZUNA_SURVEY_UNKNOWN_LINK_RATE",
    "INVITATION_RATE_SCOPE": "KIZUNA_SURVEY_MEMBER_INVITATION_RATE",  # a name in survey.services
}


def _code_files() -> list[Path]:
    skipped = ("/tests/", "/migrations/", "/testing/", "/e2e/")
    return [
        path
        for path in sorted((ROOT / "kizuna").rglob("*.py"))
        if not any(part in path.relative_to(ROOT).as_posix() for part in skipped)
    ]


def test_every_throttle_of_the_code_is_reviewed() -> None:
    names = re.compile(r"^(KIZUNA_\w+_(?:RATE|MAX_FAILURES)) =", re.MULTILINE)
    throttle_settings = set(names.findall((ROOT / "kizuna/settings.py").read_text()))
    scopes = set()
    for path in _code_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "ratelimit"
            ):
                scope = node.args[0]
                scopes.add(scope.value if isinstance(scope, ast.Constant) else ast.unparse(scope))

    assert throttle_settings == set(THROTTLES)
    assert scopes == set(RATELIMIT_SCOPES)


# --- sign-in ----------------------------------------------------------------------------------


def sign_in(email: str, password: str, address: str) -> int:
    response = Client().post(
        "/accounts/sign-in/", {"username": email, "password": password}, REMOTE_ADDR=address
    )
    return response.status_code


def test_sign_in_with_the_right_password_works_after_someone_elses_failures_elsewhere() -> None:
    make_user("ada@example.com")
    for attempt in range(settings.KIZUNA_SIGNIN_MAX_FAILURES * 3):
        sign_in("ada@example.com", f"guess-{attempt}", EVE)
        sign_in(f"someone-{attempt}@example.com", "guess", EVE)

    assert sign_in("ada@example.com", PASSWORD, EVE) == 429  # the guesser is stopped
    assert sign_in("ada@example.com", PASSWORD, ADA) == 302  # Ada signs in


# --- password reset ----------------------------------------------------------------------------


def test_password_reset_links_already_sent_keep_working_when_someone_else_exhausts_the_rate() -> (
    None
):
    ada = make_user("ada@example.com")
    Client().post("/accounts/password/reset/", {"email": "ada@example.com"}, REMOTE_ADDR=EVE)
    [first] = mail.outbox
    for _ in range(10):
        Client().post("/accounts/password/reset/", {"email": "ada@example.com"}, REMOTE_ADDR=EVE)
        Client().post("/accounts/password/reset/", {"email": "ADA@example.com"}, REMOTE_ADDR=ADA)

    assert len(mail.outbox) == settings.KIZUNA_PASSWORD_RESET_EMAIL_RATE.count  # limited
    [link] = re.findall(r"http://testserver(/accounts/password/reset/\S+/)", str(first.body))
    client = Client()
    form = client.get(link, REMOTE_ADDR=ADA)["Location"]
    new = "another-long-passphrase-77"
    done = client.post(form, {"new_password1": new, "new_password2": new}, REMOTE_ADDR=ADA)
    assert done.status_code == 302
    ada.refresh_from_db()
    assert ada.check_password(new)
    assert sign_in("ada@example.com", new, ADA) == 302


# --- SC keys -------------------------------------------------------------------------------------


def survey_api(email: str, key: str, address: str) -> int:
    response = Client().get(
        "/survey/api/v1/account",
        headers={"X-SC-Email": email, "X-SC-Key": key},
        REMOTE_ADDR=address,
    )
    return response.status_code


def test_sc_key_a_valid_key_is_accepted_whatever_others_sent_from_the_same_address() -> None:
    ada = make_user("ada@example.com")
    account = create_account(name="Ada's Surveys", owner=ada)
    member = AccountMember.objects.get(account=account, user=ada)
    key = get_or_create_key(member=member, by=ada).reveal()
    guesses = settings.KIZUNA_SC_KEY_MAX_FAILURES * 6
    for attempt in range(guesses):
        survey_api("ada@example.com", f"sck_wrong{attempt}", SHARED)
        survey_api(f"made-up-{attempt}@example.com", "sck_wrong", SHARED)

    assert survey_api("ada@example.com", "sck_wrong", SHARED) == 429  # guessing is stopped
    assert survey_api("ada@example.com", key, SHARED) == 200
    assert survey_api("ada@example.com", key, ADA) == 200


# --- trust token ---------------------------------------------------------------------------------


@override_settings(KIZUNA_TRUST_TOKEN=TRUST_TOKEN)
def test_trust_token_the_right_token_is_accepted_whatever_others_sent_from_the_same_address() -> (
    None
):
    def call(token: str) -> int:
        return (
            Client()
            .post(
                "/survey/api/v1/internal/accounts-for-email",
                json.dumps({"email": "ada@example.com"}),
                content_type="application/json",
                headers={"X-Kizuna-Trust": token},
                REMOTE_ADDR=SHARED,
            )
            .status_code
        )

    for attempt in range(settings.KIZUNA_TRUST_TOKEN_MAX_FAILURES * 3):
        call(f"wrong-{attempt}")

    assert call("wrong") == 429
    assert call(TRUST_TOKEN) == 200
    assert User.objects.filter(email="ada@example.com").exists()


# --- survey links ----------------------------------------------------------------------------


@override_settings(KIZUNA_SURVEY_UNKNOWN_LINK_RATE=Rate(5, 600))
def test_survey_unknown_link_a_real_invitation_is_answered_whatever_others_sent() -> None:
    ada = make_user("ada@example.com")
    account = create_account(name="Ada's Surveys", owner=ada)
    survey = Survey.objects.create(portal=account.portals.get(), title="Visit", created_by=ada)
    invitation = Invitation.objects.create(survey=survey, recipient_reference="crm:lead:1")
    for attempt in range(20):
        Client().get(f"/s/i/made-up-token-{attempt}/", REMOTE_ADDR=SHARED)

    assert Client().get("/s/i/made-up-token/", REMOTE_ADDR=SHARED).status_code == 429
    assert Client().get(f"/s/i/{invitation.token}/", REMOTE_ADDR=SHARED).status_code == 200
    assert Client().get(f"/s/{survey.public_id}/", REMOTE_ADDR=SHARED).status_code == 200
