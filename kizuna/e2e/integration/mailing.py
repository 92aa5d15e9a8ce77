"""What the sending tests share: contacts to send to, the Send survey page, the links in
the mail that arrived, and a count of the invitation API calls."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from kizuna.crm.integration import client
from kizuna.crm.integration.client import Credentials
from kizuna.crm.mail.extensions import PrepareContext
from kizuna.crm.models import Contact, Organization
from kizuna.identity.models import User
from kizuna.survey.models import Survey

LINK = re.compile(r"(https?://[^\s\"<>]+/s/i/([A-Za-z0-9_\-]+)/)")


def make_contacts(organization: Organization, count: int) -> list[Contact]:
    return [
        Contact.objects.create(
            organization=organization,
            family_name=f"Family{i}",
            given_name=f"Given{i}",
            email=f"person{i}@example.com",
        )
        for i in range(count)
    ]


def survey_part(organization: Organization, sender: User, survey: Survey) -> PrepareContext:
    """The first part of a send of contacts with a link to `survey`, as the prepare step
    hands it to prepare_survey_links()."""
    return PrepareContext(
        organization=organization,
        module="contacts",
        sender=sender,
        language="en",
        keys=frozenset({str(survey.pk)}),
        batch_key="k",
        part=0,
    )


def links_in(message: Any) -> list[tuple[str, str]]:
    """(link, token) of each personal survey link in a received message's text part."""
    body = message.get_body(("plain",)).get_content()
    return LINK.findall(body)


def send_page(ada_client: Client, module: str, records: list[Any], **data: Any) -> Any:
    """Submit Send survey for `records` (links valid for the form's initial 30 days)."""
    ids = ",".join(str(r.pk) for r in records)
    return ada_client.post(
        reverse("crm_survey_sending:send"),
        {"module": module, "ids": ids, "expiry_days": "30", **data},
    )


class CountingCalls:
    """Counts create_invitations calls; every call still goes to the Survey service."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[int] = []
        original = client.create_invitations

        def counting(
            credentials: Credentials, *, survey_id: int, invitations: Any
        ) -> list[client.Invitation]:
            self.sizes.append(len(invitations))
            return original(credentials, survey_id=survey_id, invitations=invitations)

        monkeypatch.setattr(client, "create_invitations", counting)


def speak(user: User, client_: Client, language: str) -> None:
    """The user reads the CRM in `language` (their setting and the language cookie)."""
    user.language = language
    user.save(update_fields=["language"])
    client_.cookies["kizuna_language"] = language
