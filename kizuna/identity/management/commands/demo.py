"""`kizuna demo`: the demo people, then each service's demo data (idempotent)."""

from __future__ import annotations

import importlib
import importlib.util
import io
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser, OutputWrapper
from django.db import transaction

from kizuna.identity.models import User

DEMO_PASSWORD = "kizuna-demo"  # noqa: S105 - printed for everyone on purpose: demo data only

# (key, email, full name, what the person can do in the demo)
DEMO_PEOPLE = (
    (
        "ada",
        "ada@example.com",
        "Ada Lovelace",
        "CRM administrator; owns a Survey account with two portals",
    ),
    ("bob", "bob@example.com", "Bob Smith", "CRM standard user in Ada's organization"),
    (
        "carol",
        "carol@example.com",
        "Carol Tanaka",
        "owns another Survey account (for the 'another user's account' method)",
    ),
    ("charlie", "charlie@example.com", "Charlie Sato", "a member of a second organization"),
)


class Command(BaseCommand):
    help = "Create the demo users and each service's demo data; safe to run again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--quiet", action="store_true", help="Print nothing (errors still go to stderr)."
        )
        parser.add_argument(
            "--logins-only",
            action="store_true",
            help="Load nothing; only print the URL and the demo logins (make run, later starts).",
        )

    def handle(
        self, *args: Any, quiet: bool = False, logins_only: bool = False, **options: Any
    ) -> None:
        out = OutputWrapper(io.StringIO()) if quiet else self.stdout
        if not logins_only:
            self._load(out)
        out.write(f"Kizuna demo is ready: {settings.KIZUNA_BASE_URL}/")
        for _key, email, _name, role in DEMO_PEOPLE:
            out.write(f"  {email:<22} {role}")
        out.write(f"Password for all of them: {DEMO_PASSWORD}")

    def _load(self, out: OutputWrapper) -> None:
        with transaction.atomic():
            users = {key: _demo_user(email, full_name) for key, email, full_name, _ in DEMO_PEOPLE}
        for service in settings.KIZUNA_SERVICES:
            module_name = f"kizuna.{service}.demo"
            if not _module_exists(module_name):
                continue
            # Each service loads its own data: identity never imports crm or survey statically.
            module = importlib.import_module(module_name)
            with transaction.atomic():
                module.load(users=users, stdout=out)


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # the service package itself is missing
        return False


def _demo_user(email: str, full_name: str) -> User:
    user, created = User.objects.get_or_create(email=email, defaults={"full_name": full_name})
    if created:
        # Hashing is slow on purpose: only new users get it, so a second run stays fast.
        user.set_password(DEMO_PASSWORD)
        user.save(update_fields=["password"])
    return user
