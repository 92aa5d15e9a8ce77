"""The demo data of CRM mail: templates in both languages and sent emails, loaded once."""

from __future__ import annotations

import io

import pytest
from django.core.management.base import OutputWrapper

from kizuna.crm.mail import demo
from kizuna.crm.mail.models import EmailTemplate, OutgoingMessage, SendBatch
from kizuna.crm.models import Lead
from kizuna.work.leases import WorkStatus


@pytest.mark.usefixtures("ada_membership", "bob_membership")
def test_demo_loads_templates_and_sent_emails_once(
    ada, bob, organization, lead, contact, local_mailbox
):
    Lead.objects.create(
        organization=organization, family_name="Out", email="out@x.test", email_opt_out=True
    )
    users = {"ada": ada, "bob": bob}
    buffer = io.StringIO()
    output = OutputWrapper(buffer)
    demo.load(users=users, stdout=output)
    demo.load(users=users, stdout=output)

    assert sorted(EmailTemplate.objects.values_list("module", "name")) == [
        ("contacts", "Quarterly update"),
        ("contacts", "年末のご挨拶"),
        ("leads", "Webinar invitation"),
        ("leads", "資料請求のお礼"),
    ]
    assert SendBatch.objects.count() == 2
    assert [batch.skipped[0]["reason"] for batch in SendBatch.objects.filter(module="leads")] == [
        "opted_out"
    ]
    assert set(OutgoingMessage.objects.values_list("status", flat=True)) == {WorkStatus.DONE}
    assert len(list(local_mailbox.glob("*.eml"))) == 2
    assert buffer.getvalue().splitlines() == [
        "CRM mail: 4 email templates and 2 sent emails (2 messages) in Kizuna Demo.",
        "CRM mail: demo templates already loaded.",
    ]
