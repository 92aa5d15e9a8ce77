import io
import sys
import types
from importlib.machinery import ModuleSpec

import pytest
from django.core.management import call_command

from kizuna.identity.models import User


class FakeServiceDemo:
    """Stands in for kizuna.<service>.demo, recording how `kizuna demo` calls it."""

    def __init__(self, monkeypatch, service: str) -> None:
        self.calls: list[dict] = []
        module = types.ModuleType(f"kizuna.{service}.demo")
        module.__spec__ = ModuleSpec(module.__name__, None)
        module.load = self.load  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, module.__name__, module)

    def load(self, *, users, stdout) -> None:
        self.calls.append({"users": users, "stdout": stdout})
        stdout.write("crm demo loaded")


@pytest.fixture
def crm_demo(monkeypatch, settings):
    settings.KIZUNA_SERVICES = ("crm",)
    settings.KIZUNA_BASE_URL = "http://127.0.0.1:8000"
    return FakeServiceDemo(monkeypatch, "crm")


def run_demo(*args: str) -> str:
    out = io.StringIO()
    call_command("demo", *args, stdout=out)
    return out.getvalue()


def test_demo_creates_the_four_people_with_the_demo_password(db, crm_demo):
    run_demo("--quiet")

    people = User.objects.order_by("email")
    assert [(user.email, user.full_name) for user in people] == [
        ("ada@example.com", "Ada Lovelace"),
        ("bob@example.com", "Bob Smith"),
        ("carol@example.com", "Carol Tanaka"),
        ("charlie@example.com", "Charlie Sato"),
    ]
    assert all(user.check_password("kizuna-demo") for user in people)


def test_demo_hands_the_users_to_each_service_demo(db, crm_demo):
    run_demo()

    [call] = crm_demo.calls
    assert {key: user.email for key, user in call["users"].items()} == {
        "ada": "ada@example.com",
        "bob": "bob@example.com",
        "carol": "carol@example.com",
        "charlie": "charlie@example.com",
    }


def test_demo_prints_the_url_the_logins_and_the_password(db, crm_demo):
    output = run_demo()

    assert output.splitlines() == [
        "crm demo loaded",
        "Kizuna demo is ready: http://127.0.0.1:8000/",
        "  ada@example.com        CRM administrator; owns a Survey account with two portals",
        "  bob@example.com        CRM standard user in Ada's organization",
        "  carol@example.com      owns another Survey account (for the 'another user's account'"
        " method)",
        "  charlie@example.com    a member of a second organization",
        "Password for all of them: kizuna-demo",
    ]


def test_demo_quiet_prints_nothing(db, crm_demo):
    assert run_demo("--quiet") == ""
    assert len(crm_demo.calls) == 1


def test_demo_run_twice_changes_nothing(db, crm_demo):
    run_demo("--quiet")
    before = list(User.objects.order_by("pk").values_list("pk", "email", "password"))

    run_demo("--quiet")

    assert list(User.objects.order_by("pk").values_list("pk", "email", "password")) == before


def test_demo_keeps_a_demo_users_own_changes(db, crm_demo):
    run_demo("--quiet")
    User.objects.filter(email="bob@example.com").update(full_name="Robert Smith", language="ja")

    run_demo("--quiet")

    bob = User.objects.get(email="bob@example.com")
    assert (bob.full_name, bob.language) == ("Robert Smith", "ja")


def test_demo_skips_services_without_a_demo_module(db, settings):
    settings.KIZUNA_SERVICES = ("no_such_service",)

    output = run_demo()

    assert output.startswith("Kizuna demo is ready:")
    assert User.objects.count() == 4


def test_demo_logins_only_loads_nothing_and_prints_the_logins(db, crm_demo):
    output = run_demo("--logins-only")

    assert User.objects.count() == 0
    assert crm_demo.calls == []
    assert output.splitlines()[0] == "Kizuna demo is ready: http://127.0.0.1:8000/"
    assert output.splitlines()[-1] == "Password for all of them: kizuna-demo"
