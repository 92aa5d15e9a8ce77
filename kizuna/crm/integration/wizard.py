"""What the setup wizard (S3-S9) remembers between its steps, in the administrator's session.

Each step stores what was entered, so Back (and coming back later) shows it again; the SC
key is kept encrypted. Nothing is written to the database before the last step (S9).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from django.http import HttpRequest

from kizuna.crm.integration.client import Credentials, Portal
from kizuna.crm.integration.models import ConnectionMethod
from kizuna.crm.models import Organization
from kizuna.lib import crypto

SESSION_KEY = "crm_integration_setup"


@dataclass
class SetupState:
    organization_id: int
    method: str = ""
    # Another user's account: what was typed. My own account: the chosen account's key.
    email: str = ""
    key_encrypted: str = ""
    account_id: int | None = None
    account_name: str = ""
    # My own account: every account found for the administrator, [{"id", "name", "key"}].
    accounts: list[dict[str, Any]] = field(default_factory=list)
    account_created: bool = False
    available_portals: list[dict[str, Any]] = field(default_factory=list)
    use_all: bool = False
    portal_ids: list[int] = field(default_factory=list)
    users_done: bool = False
    add_all_administrators: bool = False
    who: str = "all"
    user_ids: list[int] = field(default_factory=list)

    # --- the steps ---------------------------------------------------------------------

    @property
    def is_own_account(self) -> bool:
        return self.method == ConnectionMethod.OWN_ACCOUNT

    def steps(self) -> list[str]:
        account_step = "account" if self.is_own_account else "credentials"
        return ["method", account_step, "portals", "users", "confirm"]

    def is_done(self, step: str) -> bool:
        if step == "method":
            return bool(self.method)
        if step in ("credentials", "account"):
            return self.account_id is not None and bool(self.key_encrypted)
        if step == "portals":
            return self.use_all or bool(self.portal_ids)
        if step == "users":
            return self.users_done
        return False

    def first_open_step(self, wanted: str) -> str:
        """`wanted`, or the first step before it that still needs an answer."""
        steps = self.steps()
        if wanted not in steps:
            return steps[0]
        for step in steps[: steps.index(wanted)]:
            if not self.is_done(step):
                return step
        return wanted

    def previous(self, step: str) -> str | None:
        steps = self.steps()
        index = steps.index(step) if step in steps else 0
        return steps[index - 1] if index > 0 else None

    def following(self, step: str) -> str:
        steps = self.steps()
        return steps[min(steps.index(step) + 1, len(steps) - 1)]

    def number(self, step: str) -> int:
        return self.steps().index(step) + 1

    # --- values ------------------------------------------------------------------------

    def credentials(self) -> Credentials | None:
        if not self.key_encrypted:
            return None
        return Credentials(email=self.email, key=crypto.decrypt_secret(self.key_encrypted))

    def set_credentials(self, credentials: Credentials) -> None:
        self.email = credentials.email
        self.key_encrypted = crypto.encrypt_secret(credentials.key)

    def forget_account(self) -> None:
        """A change of method or account: the later answers belonged to the other one."""
        self.account_id = None
        self.account_name = ""
        self.available_portals = []
        self.use_all = False
        self.portal_ids = []
        self.users_done = False

    def chosen_portals(self) -> list[Portal]:
        names = {int(p["id"]): str(p["name"]) for p in self.available_portals}
        return [Portal(id=pk, name=names.get(pk, "")) for pk in self.portal_ids]


def load(request: HttpRequest, organization: Organization) -> SetupState:
    stored = request.session.get(SESSION_KEY)
    if isinstance(stored, dict) and stored.get("organization_id") == organization.pk:
        try:
            return SetupState(**stored)
        except TypeError:  # a session written by an older version of this class
            pass
    return SetupState(organization_id=organization.pk)


def save(request: HttpRequest, state: SetupState) -> None:
    request.session[SESSION_KEY] = asdict(state)


def clear(request: HttpRequest) -> None:
    request.session.pop(SESSION_KEY, None)
