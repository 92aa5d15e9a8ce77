"""Values of extension placeholders are the recipient's alone unless the namespace says
otherwise: the sender's copy in the local mailbox hides them (issue 9.1)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.urls import reverse

from kizuna.crm.mail import extensions
from kizuna.crm.mail.extensions import MergeContext
from kizuna.crm.mail.tests.conftest import queue_text_email
from kizuna.testing.worker import run_worker

PLACEHOLDER = "[link shown only to the recipient]"


def personal_link(context: MergeContext, key: str) -> str:
    return f"https://partner.example/{key}/{context.record.pk}-personal"


@pytest.fixture(params=[True, False], ids=["recipient-only", "shared"])
def namespace(request: pytest.FixtureRequest) -> Iterator[bool]:
    extensions.register_placeholder_namespace(
        "partner", resolve=personal_link, recipient_only=request.param
    )
    try:
        yield request.param
    finally:
        extensions.unregister("partner")


def test_the_senders_copy_hides_recipient_only_placeholder_values(
    namespace: bool, ada, ada_client, organization, lead, local_mailbox
) -> None:
    queue_text_email(organization, ada, [lead], body_text="Visit {{ partner.offer }} today")
    run_worker()
    [path] = local_mailbox.glob("*.eml")

    page = ada_client.get(reverse("identity:mailbox-message", args=[path.name])).content.decode()

    link = f"https://partner.example/offer/{lead.pk}-personal"
    if namespace:
        assert link not in page
        assert f"Visit {PLACEHOLDER} today" in page
    else:
        assert f'Visit <a href="{link}" rel="nofollow">{link}</a> today' in page
    assert "/crm/mail/unsubscribe/" not in page  # the unsubscribe link is the lead's either way
