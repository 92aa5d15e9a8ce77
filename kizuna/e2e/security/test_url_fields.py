"""Issue 9, Tests: every URL a user types against the SSRF guard (kizuna/lib/http.py).

A URL field appears in a model, a form or an API input schema; each is listed in URL_FIELDS
with how it is guarded and the test that proves it. A new one (a URLField, or a field
named like a URL or link) fails test_every_url_field_a_user_types_is_reviewed until it is
listed. Outbound connections start only in kizuna/lib/http.py (checked below), whose
guard resolves the host and refuses private, loopback, link-local and reserved
addresses at creation and again at each connection. Links typed inside rich text (CRM
email templates) are never requested by the server; they are sanitized to http, https
and mailto (crm/mail/tests/test_merged_links.py).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from django import forms
from django.apps import apps
from django.db import models
from django.test import Client
from django.urls import reverse
from ninja import Schema

import kizuna
from kizuna.survey.keys.services import get_or_create_key
from kizuna.survey.models import AccountMember
from kizuna.survey.services import create_account
from kizuna.survey.webhooks.models import WebhookEndpoint
from kizuna.testing.personas import client_for, make_user

ROOT = Path(__file__).resolve().parents[3]
URL_LIKE = re.compile(r"url|link|website|homepage|callback|endpoint|href", re.IGNORECASE)
SKIPPED = (".tests", ".migrations", ".testing", ".e2e")
URL_GUARD_TESTS = "kizuna/survey/webhooks/tests/test_url_guard.py"

# Each URL field a user fills in: how the guard covers it, and the test file that proves it.
URL_FIELDS = {
    "model survey_webhooks.WebhookEndpoint.url": (
        "stored only through the form or the API below; lib.http.post checks it again at "
        "every delivery (a URL stored before a guard existed is refused then)",
        URL_GUARD_TESTS,
    ),
    "form kizuna.survey.webhooks.forms.WebhookEndpointForm.url": (
        "clean_url: lib.http.check_url through webhooks.services.url_refusal",
        URL_GUARD_TESTS,
    ),
    "model crm_integration.SurveyInvitation.link": (
        "never typed by anyone: the personal link the Survey API answered for an invitation "
        "(client.create_invitations); mailed to the recipient, never requested by the server",
        "kizuna/e2e/integration/test_client.py",
    ),
    "schema kizuna.survey.api.schemas.WebhookEndpointIn.url": (
        "webhooks.services.register_endpoint: lib.http.check_url, 422 `invalid`",
        URL_GUARD_TESTS,
    ),
}
# Modules that open sockets themselves, and why that is not a request to a typed URL.
SOCKET_USERS = {
    "kizuna/crm/mail/transport.py": "SMTP to the configured server (socket errors only)",
    "kizuna/work/startup.py": "the host name of this machine",
    "kizuna/work/management/commands/serve.py": "binding the configured address",
    "kizuna/work/workers.py": "the host name of this machine",
}
HTTP_CLIENTS = {
    "httpx",
    "httpcore",
    "requests",
    "urllib3",
    "aiohttp",
    "pycurl",
    "urllib.request",
    "http.client",
}


def _modules(suffix: str) -> list[ModuleType]:
    return [
        importlib.import_module(info.name)
        for info in pkgutil.walk_packages(kizuna.__path__, "kizuna.")
        if info.name.endswith(suffix) and not any(part in info.name for part in SKIPPED)
    ]


def _url_fields() -> set[str]:
    found = set()
    for model in apps.get_models():
        if not model.__module__.startswith("kizuna."):
            continue
        for field in model._meta.get_fields():
            if isinstance(field, models.URLField) or (
                isinstance(field, models.CharField | models.TextField)
                and URL_LIKE.search(field.name)
            ):
                found.add(f"model {model._meta.label}.{field.name}")
    for module in _modules(".forms"):
        for name, form in inspect.getmembers(module, inspect.isclass):
            if form.__module__ == module.__name__ and issubclass(form, forms.BaseForm):
                found |= {
                    f"form {module.__name__}.{name}.{field_name}"
                    for field_name, field in _base_fields(form).items()
                    if isinstance(field, forms.URLField) or URL_LIKE.search(field_name)
                }
    for module in _modules(".schemas"):
        for name, schema in inspect.getmembers(module, inspect.isclass):
            inbound = issubclass(schema, Schema) and not name.endswith("Out")
            if schema.__module__ == module.__name__ and inbound:
                found |= {
                    f"schema {module.__name__}.{name}.{field_name}"
                    for field_name in schema.model_fields
                    if URL_LIKE.search(field_name)
                }
    return found


def _base_fields(form: Any) -> dict[str, forms.Field]:
    fields: dict[str, forms.Field] = form.base_fields
    return fields


@pytest.mark.django_db
def test_every_url_field_a_user_types_is_reviewed() -> None:
    assert _url_fields() == set(URL_FIELDS)
    for _how, test_file in URL_FIELDS.values():
        assert "def test_" in (ROOT / test_file).read_text()


def test_outbound_connections_start_only_in_lib_http() -> None:
    clients: dict[str, set[str]] = {}
    sockets = set()
    for path in sorted((ROOT / "kizuna").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if any(part.strip(".") in relative.split("/") for part in SKIPPED):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = {node.module}
            else:
                continue
            if names & HTTP_CLIENTS or {n.split(".")[0] for n in names} & HTTP_CLIENTS:
                clients.setdefault(relative, set()).update(names)
            if "socket" in names:
                sockets.add(relative)

    # kizuna/lib/http.py speaks HTTP/1.1 on sockets of its own (no client library), its
    # connections in kizuna/lib/http_connections.py.
    assert set(clients) <= {"kizuna/lib/http.py"}
    assert sockets - {"kizuna/lib/http.py", "kizuna/lib/http_connections.py"} == set(SOCKET_USERS)


# --- the guard through every entry point, with the usual SSRF targets ---------------------------

PRIVATE_TARGETS = [
    "http://127.0.0.1/hook",
    "http://localhost:8000/hook",
    "http://10.0.0.5/hook",
    "http://172.16.0.1/hook",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/hook",
    "http://[fd00::1]/hook",
    "http://0.0.0.0/hook",
    "http://2130706433/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "https://100.64.0.1/hook",
]


@pytest.fixture
def administrator(db: None) -> AccountMember:
    ada = make_user("ada@example.com")
    return AccountMember.objects.get(account=create_account(name="Ada's Surveys", owner=ada))


@pytest.mark.parametrize("url", PRIVATE_TARGETS)
def test_a_private_target_is_refused_by_the_api_and_the_settings_form(
    administrator: AccountMember, url: str
) -> None:
    key = get_or_create_key(member=administrator, by=administrator.user).reveal()

    api = Client().post(
        "/survey/api/v1/webhooks",
        json.dumps({"url": url, "events": ["response.completed"]}),
        content_type="application/json",
        headers={"X-SC-Email": administrator.user.email, "X-SC-Key": key},
    )
    form = client_for(administrator.user).post(
        reverse("survey:survey_webhooks:endpoints"), {"url": url, "events": ["response.completed"]}
    )

    assert api.status_code == 422
    assert list(api.json()["error"]["fields"]) == ["url"]
    assert form.context["form"].errors["url"]
    assert not WebhookEndpoint.objects.exists()
