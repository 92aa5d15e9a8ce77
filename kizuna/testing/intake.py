"""The CRM's intake seen from the Survey service, without it: a connection made directly in
the database, and the contract's example events signed and posted to its intake address the
way the Survey service posts them (import it; not a plugin).

The end-to-end tests with both services are in kizuna/e2e/integration/.
"""

from __future__ import annotations

import base64
import copy
import datetime
import json
import secrets
import uuid
from typing import Any

from django.test import Client
from django.urls import reverse
from django.utils import timezone
from standardwebhooks import Webhook

from kizuna import contracts
from kizuna.crm.integration.models import Connection, ConnectionMethod
from kizuna.crm.models import Contact, Lead, Organization
from kizuna.lib import crypto

SUBMITTED = datetime.datetime(2026, 11, 30, 2, 3, 45, tzinfo=datetime.UTC)


def new_connection(organization: Organization, **fields: Any) -> Connection:
    """An enabled connection of `organization` to Ada's Survey account, with its own secret."""
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    return Connection.objects.create(
        organization=organization,
        method=ConnectionMethod.OTHER_ACCOUNT,
        survey_account_id=1,
        survey_account_name="Ada's Surveys",
        sc_email="ada@example.com",
        sc_key_encrypted=crypto.encrypt_secret("sc_not-used-here"),
        webhook_secret_encrypted=crypto.encrypt_secret(secret),
        uses_all_portals=True,
        **fields,
    )


def post(
    connection: Connection,
    event: dict[str, Any] | bytes,
    *,
    message_id: str | None = None,
    signed_at: datetime.datetime | None = None,
    secret: str | None = None,
    signature: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """Deliver `event` to the connection's intake, signed as the Survey service signs it."""
    body = event if isinstance(event, bytes) else json.dumps(event, ensure_ascii=False).encode()
    message_id = message_id or f"msg_{uuid.uuid4().hex}"
    signed_at = signed_at or timezone.now()
    signed = Webhook(secret or connection.webhook_secret()).sign(
        message_id, signed_at, body.decode()
    )
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(signed_at.timestamp())),
        "webhook-signature": signature or signed,
    }
    page = Client().post(
        reverse("crm_integration:intake", args=[connection.intake_token]),
        data=body,
        content_type="application/json",
        headers=headers,
    )
    return page.status_code, page.json()


def completed(
    connection: Connection,
    record: Lead | Contact | None,
    *,
    response_id: str | None = None,
    submitted_at: datetime.datetime = SUBMITTED,
    reference: str | None = None,
    event_type: str = "response.completed",
) -> dict[str, Any]:
    """The contract's example event for `record`'s personal link of `connection`."""
    event = copy.deepcopy(contracts.example(event_type))
    data = event["data"]
    if "response_id" in data:
        data["response_id"] = response_id or str(uuid.uuid4())
    when = submitted_at.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")
    data["submitted_at" if "submitted_at" in data else "opened_at"] = when
    if reference is None:
        reference = connection.recipient_reference(record) if record is not None else ""
    data["recipient_reference"] = reference
    return event
