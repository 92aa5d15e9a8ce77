"""The people of every test: one name, one meaning, in both services.

`ada`, `bob`, `carol` and `charlie` are always Users (the people of DESIGN.md). Beside them:

- `organization` (CRM "Kizuna Demo") and `other_organization` (CRM "Sato Trading"):
  `ada_membership` (administrator of `organization`), `bob_membership` (standard user of
  `organization`), `charlie_membership` (administrator of `other_organization`); Carol has
  no CRM organization. They are in kizuna/testing/crm.py.
- `account` (Survey "Ada's Surveys", with its first portal) and `carol_account` (Survey
  "Carol's Research"): `ada_member` (administrator of `account`), `bob_member` (plain member
  of `account`), `carol_member` (administrator of `carol_account`); Charlie has no Survey
  account (a CRM-only user). They are in kizuna/testing/survey.py. The SC key, API, webhook
  and audit tests of the Survey use a smaller world of their own (kizuna/testing/survey_keys.py:
  a bare `account` without portals, a `portal` "Customers" and a three-question `survey`).
- `ada_client`, `bob_client`, `carol_client`, `charlie_client`: a test client signed in as
  that person, who holds every role above (Ada administers `organization` and `account`, Bob
  is a standard user and a plain member of them, Carol administers `carol_account`, Charlie
  administers `other_organization`); `anonymous_client` is signed out.
- `ada_api`, `bob_api`, `charlie_api`, `anonymous_api`: CRM API clients with a token of their
  organization (kizuna/testing/crm_api.py); `ada_sc_headers`, `carol_sc_headers`: Survey API
  headers with that member's SC key (kizuna/testing/survey.py).

A test that needs a role asks for it (`ada_membership`, `ada_member`) or for a client; `ada`
alone is a user who can sign in and nothing more.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from django.test import Client, override_settings

if TYPE_CHECKING:  # models load only once Django is set up
    from kizuna.identity.models import User

PASSWORD = "correct-horse-battery-staple"  # noqa: S105 - test-only


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hashing() -> Iterator[None]:
    """Tests create many users: hash their passwords cheaply (never do this outside tests)."""
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


def make_user(email: str, password: str = PASSWORD, **fields: Any) -> User:
    """A user who can sign in with `password`; extra fields go to the model."""
    from kizuna.identity.models import User

    return User.objects.create_user(email, password, **fields)


def client_for(user: User) -> Client:
    """A test client signed in as `user`."""
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def user(db: None) -> User:
    """A plain user with no role anywhere."""
    return make_user("pat@example.com", full_name="Pat Example")


@pytest.fixture
def user_client(user: User) -> Client:
    """A test client signed in as `user`."""
    return client_for(user)


@pytest.fixture
def ada(db: None) -> User:
    return make_user("ada@example.com", full_name="Ada Lovelace")


@pytest.fixture
def bob(db: None) -> User:
    return make_user("bob@example.com", full_name="Bob Smith")


@pytest.fixture
def carol(db: None) -> User:
    return make_user("carol@example.com", full_name="Carol Tanaka")


@pytest.fixture
def charlie(db: None) -> User:
    return make_user("charlie@example.com", full_name="Charlie Sato")


# The signed-in clients: each person with every role the module docstring gives them.
@pytest.fixture
def ada_client(ada: User, ada_membership: Any, ada_member: Any) -> Client:
    return client_for(ada)


@pytest.fixture
def bob_client(bob: User, bob_membership: Any, bob_member: Any) -> Client:
    return client_for(bob)


@pytest.fixture
def carol_client(carol: User, carol_member: Any) -> Client:
    return client_for(carol)


@pytest.fixture
def charlie_client(charlie: User, charlie_membership: Any) -> Client:
    return client_for(charlie)


@pytest.fixture
def anonymous_client(db: None) -> Client:
    return Client()


@pytest.fixture
def personas(
    ada_client: Client, bob_client: Client, charlie_client: Client, anonymous_client: Client
) -> dict[str, Client]:
    """The CRM matrix's people by name."""
    return {
        "ada": ada_client,
        "bob": bob_client,
        "charlie": charlie_client,
        "anonymous": anonymous_client,
    }
