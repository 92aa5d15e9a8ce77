"""Demo data of CRM mail: email templates in Japanese and English, and a few sent emails.

Called by kizuna.crm.demo.load() after the demo organizations exist; safe to run again.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import OutputWrapper

from kizuna.crm.mail import services
from kizuna.crm.mail.models import EmailTemplate, OutgoingMessage, SendBatch
from kizuna.crm.models import Contact, Lead, Organization
from kizuna.identity.models import User
from kizuna.work import leases

DEMO_ORGANIZATION = "Kizuna Demo"

# (module, name, subject, HTML body, plain-text body)
TEMPLATES = [
    (
        "leads",
        "資料請求のお礼",
        "{{ lead.family_name }}様 資料請求ありがとうございます",
        "<p>{{ lead.company }}<br>{{ lead.family_name }} {{ lead.given_name }} 様</p>"
        "<p>このたびは資料をご請求いただき、誠にありがとうございます。</p>"
        "<p>ご不明な点がございましたら、お気軽に本メールへご返信ください。</p>"
        "<p>{{ sender.name }}<br>{{ sender.email }}</p>",
        "",
    ),
    (
        "leads",
        "Webinar invitation",
        "{{ lead.given_name }}, join our product webinar",
        "<p>Hello {{ lead.given_name }},</p>"
        "<p>We would be glad to see {{ lead.company }} at our next product webinar.</p>"
        "<p>Best regards,<br>{{ sender.name }}</p>",
        "Hello {{ lead.given_name }},\n\n"
        "We would be glad to see {{ lead.company }} at our next product webinar.\n\n"
        "Best regards,\n{{ sender.name }}",
    ),
    (
        "contacts",
        "年末のご挨拶",
        "年末のご挨拶({{ contact.company }} {{ contact.family_name }}様)",
        "<p>{{ contact.company }}<br>{{ contact.department }}<br>"
        "{{ contact.full_name }} 様</p>"
        "<p>本年も格別のお引き立てを賜り、厚く御礼申し上げます。</p>"
        "<p>来年も変わらぬご愛顧のほど、よろしくお願い申し上げます。</p>"
        "<p>{{ sender.name }}</p>",
        "",
    ),
    (
        "contacts",
        "Quarterly update",
        "Our quarterly update for {{ contact.company }}",
        "<h2>What is new this quarter</h2>"
        "<ul><li>Faster imports</li><li>Email templates with merge fields</li></ul>"
        "<p>Questions? Reply to this email, {{ contact.given_name }}.</p>"
        "<p>{{ sender.name }}</p>",
        "",
    ),
]


def load(*, users: dict[str, User], stdout: OutputWrapper) -> None:
    organization = Organization.objects.filter(name=DEMO_ORGANIZATION).order_by("pk").first()
    if organization is None:
        return
    if EmailTemplate.objects.filter(organization=organization, name=TEMPLATES[0][1]).exists():
        stdout.write("CRM mail: demo templates already loaded.")
        return
    ada, bob = users["ada"], users["bob"]
    templates = {}
    for index, (module, name, subject, body_html, body_text) in enumerate(TEMPLATES):
        templates[name] = services.create_template(
            organization=organization,
            by=ada if index % 2 == 0 else bob,
            module=module,
            name=name,
            subject=subject,
            body_html=body_html,
            body_text=body_text,
        )
    leads = list(Lead.objects.filter(organization=organization).order_by("pk")[:6])
    opted_out = Lead.objects.filter(organization=organization, email_opt_out=True).first()
    contacts = list(Contact.objects.filter(organization=organization).order_by("pk")[:4])
    batches: list[SendBatch] = []
    for sender, records, template in (
        (ada, leads + ([opted_out] if opted_out else []), templates["資料請求のお礼"]),
        (bob, contacts, templates["Quarterly update"]),
    ):
        if records:
            batches.append(
                services.queue_emails(
                    organization=organization,
                    sender=sender,
                    module=template.module,
                    records=records,
                    subject=template.subject,
                    body_html=template.body_html,
                    body_text=template.body_text,
                    template=template,
                )
            )
    sent = _send_to_local_mailbox(batches)
    stdout.write(
        f"CRM mail: {len(templates)} email templates and {len(batches)} sent emails "
        f"({sent} messages) in {organization.name}."
    )


def _send_to_local_mailbox(batches: list[SendBatch]) -> int:
    """Send the demo emails now when they only go to the local mailbox (/mailbox/).

    With a real SMTP server configured they stay queued for `kizuna worker`, so
    loading the demo never waits on a network.
    """
    if settings.EMAIL_BACKEND != "kizuna.identity.mailbox.MailboxBackend":
        return 0
    rows = leases.claim(
        OutgoingMessage.objects.filter(batch__in=batches), worker_id="demo", limit=100
    )
    for row in rows:
        services.send_outgoing_message(row)
    return len(rows)
