"""Mail a member sends to leads names them as its sender (X-Kizuna-Sent-By), so the
local mailbox shows it to them and to its recipients, never to another organization."""

from __future__ import annotations

import pytest

from kizuna.crm.mail.models import OutgoingMessage
from kizuna.crm.mail.tests.conftest import queue_text_email
from kizuna.testing.worker import run_worker
from kizuna.work.leases import WorkStatus


@pytest.mark.usefixtures("ada_membership")
def test_a_sent_message_names_the_member_who_sent_the_batch(ada, organization, lead, smtp):
    queue_text_email(organization, ada, [lead], subject="Hello")
    run_worker()
    (received,) = smtp.to("taro@example.jp")
    assert received["X-Kizuna-Sent-By"] == "ada@example.com"


@pytest.mark.usefixtures("ada_membership")
def test_a_message_whose_sender_was_deleted_names_no_sender(ada, organization, lead, smtp):
    queue_text_email(organization, ada, [lead], subject="Hello")
    ada.delete()
    run_worker()
    (received,) = smtp.to("taro@example.jp")
    assert received["X-Kizuna-Sent-By"] is None
    assert OutgoingMessage.objects.get().status == WorkStatus.DONE


def test_ada_reads_in_the_mailbox_what_she_sent_a_lead_and_charlie_gets_404(
    ada, ada_client, charlie_client, organization, lead, local_mailbox
):
    queue_text_email(organization, ada, [lead], subject="Hello {{ lead.given_name }}")
    run_worker()
    (path,) = local_mailbox.glob("*.eml")
    message_url = f"/mailbox/{path.name}/"

    listing = ada_client.get("/mailbox/")
    assert listing.status_code == 200
    assert f'href="{message_url}"' in listing.text
    assert ">Hello 太郎</a>" in listing.text
    page = ada_client.get(message_url)
    assert page.status_code == 200
    assert "<h1>Hello 太郎</h1>" in page.text

    assert charlie_client.get(message_url).status_code == 404
    assert path.name not in charlie_client.get("/mailbox/").text
