"""Users for tests: `make_user()` and the plain persona users every app builds on.

The personas are the people of DESIGN.md: Ada, Bob, Carol and Charlie. Here they
are only users who can sign in; each service gives them their roles in its own
fixtures (for example a CRM `ada` fixture that makes `ada_user` an administrator).
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
def ada_user(db: None) -> User:
    return make_user("ada@example.com", full_name="Ada Lovelace")


@pytest.fixture
def bob_user(db: None) -> User:
    return make_user("bob@example.com", full_name="Bob Smith")


@pytest.fixture
def carol_user(db: None) -> User:
    return make_user("carol@example.com", full_name="Carol Tanaka")


@pytest.fixture
def charlie_user(db: None) -> User:
    return make_user("charlie@example.com", full_name="Charlie Sato")
