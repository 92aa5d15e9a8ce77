"""Every write of CRM mail: templates, queueing a send, the worker's handler, unsubscribing."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Sequence
from email.utils import formataddr, make_msgid, parseaddr
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, override

from kizuna.crm.audit import services as audit
from kizuna.crm.audit.models import AuditAction
from kizuna.crm.mail import transport
from kizuna.crm.mail.extensions import MergeContext
from kizuna.crm.mail.models import EmailTemplate, OutgoingMessage, SendBatch
from kizuna.crm.mail.rendering import render_message, sanitize_html
from kizuna.crm.models import Activity, ActivityKind, Contact, Lead, Organization
from kizuna.identity import mailbox
from kizuna.identity.models import User
from kizuna.work import leases
from kizuna.work.leases import WorkStatus

logger = logging.getLogger(__name__)

SKIP_OPTED_OUT = "opted_out"
SKIP_NO_EMAIL = "no_email"


# Templates ------------------------------------------------------------------


TEMPLATE_FIELDS = ("name", "subject", "body_html", "body_text")


@transaction.atomic
def create_template(
    *,
    organization: Organization,
    by: User,
    module: str,
    name: str,
    subject: str,
    body_html: str,
    body_text: str,
) -> EmailTemplate:
    now = timezone.now()
    template = EmailTemplate.objects.create(
        organization=organization,
        module=module,
        name=name,
        subject=subject,
        body_html=body_html,
        body_text=body_text,
        created_by=by,
        created_at=now,
        modified_at=now,
    )
    audit.record(
        organization=organization,
        actor=by,
        action=AuditAction.EMAIL_TEMPLATE_CREATED,
        target=template,
        data={"module": module},
    )
    return template


@transaction.atomic
def update_template(
    *, template: EmailTemplate, by: User, name: str, subject: str, body_html: str, body_text: str
) -> EmailTemplate:
    """Save the template; the audit log names the fields that changed (nothing when none did)."""
    before = {field: getattr(template, field) for field in TEMPLATE_FIELDS}
    template.name, template.subject = name, subject
    template.body_html, template.body_text = body_html, body_text
    template.modified_at = timezone.now()
    template.save(update_fields=[*TEMPLATE_FIELDS, "modified_at"])
    # save() sanitizes body_html: compare what is stored now with what was stored before.
    changed = [field for field in TEMPLATE_FIELDS if getattr(template, field) != before[field]]
    if changed:
        audit.record(
            organization=template.organization,
            actor=by,
            action=AuditAction.EMAIL_TEMPLATE_CHANGED,
            target=template,
            data={"fields": changed},
        )
    return template


def clone_template(*, template: EmailTemplate, by: User) -> EmailTemplate:
    with override(by.language or settings.LANGUAGE_CODE):
        name = gettext("Copy of %(name)s") % {"name": template.name}
    return create_template(
        organization=template.organization,
        by=by,
        module=template.module,
        name=name[:200],
        subject=template.subject,
        body_html=template.body_html,
        body_text=template.body_text,
    )


@transaction.atomic
def delete_template(*, template: EmailTemplate, by: User) -> None:
    audit.record(
        organization=template.organization,
        actor=by,
        action=AuditAction.EMAIL_TEMPLATE_DELETED,
        target=template,
    )
    # Batches keep their own snapshot of subject and bodies.
    template.delete()


# Sending --------------------------------------------------------------------


def unsubscribe_url(token: str) -> str:
    return settings.KIZUNA_BASE_URL + reverse("crm_mail:unsubscribe", args=[token])


def _language_of(user: User | None) -> str:
    return (user.language if user is not None else "") or settings.LANGUAGE_CODE


def _from_address(sender: User) -> str:
    _, address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    return formataddr((sender.get_full_name(), address))


def _message_id() -> str:
    _, address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    domain = address.rpartition("@")[2] or urlsplit(settings.KIZUNA_BASE_URL).hostname or "kizuna"
    return make_msgid(idstring="kizuna", domain=domain)


def _record_fields(record: Lead | Contact) -> dict[str, Any]:
    return {"lead": record} if isinstance(record, Lead) else {"contact": record}


_JAPANESE_SCRIPT = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")


def recipient_language(record: Lead | Contact, default: str) -> str:
    """The language of one recipient's message: Japanese for a name written in Japanese.

    The CRM stores no language per person; a name in kana or kanji is the best
    hint we have (and such a name must read family name first anyway).
    """
    if _JAPANESE_SCRIPT.search(f"{record.family_name}{record.given_name}"):
        return "ja"
    return default


def skip_reason(record: Lead | Contact) -> str:
    """Why this record gets no message (SKIP_OPTED_OUT, SKIP_NO_EMAIL), or "" if it gets one."""
    if record.email_opt_out:
        return SKIP_OPTED_OUT
    return "" if record.email else SKIP_NO_EMAIL


def _skip_summary(subject: str, reason: str, language: str) -> str:
    # The timeline shows the summary as it is: write the reason in the sender's language.
    with override(language):
        why = (
            gettext("opted out of email")
            if reason == SKIP_OPTED_OUT
            else gettext("no email address")
        )
    return f"{subject} ({why})"[:500]


def queue_emails(
    *,
    organization: Organization,
    sender: User,
    module: str,
    records: Sequence[Lead | Contact],
    subject: str,
    body_html: str,
    body_text: str,
    template: EmailTemplate | None = None,
) -> SendBatch:
    """Render one message per recipient and queue them all in one transaction.

    Records that opted out or have no email address are skipped and reported in
    the batch and on their timelines. Placeholders of extensions are resolved
    before the transaction; a PlaceholderError from one of them queues nothing.
    """
    body_html = sanitize_html(body_html)
    language = _language_of(sender)
    from_address = _from_address(sender)
    prepared: list[tuple[Lead | Contact, str, Any]] = []
    skipped: list[tuple[Lead | Contact, str]] = []
    for record in records:
        reason = skip_reason(record)
        if reason:
            skipped.append((record, reason))
            continue
        token = secrets.token_urlsafe(24)
        context = MergeContext(
            organization=organization,
            module=module,
            record=record,
            sender=sender,
            language=recipient_language(record, language),
            unsubscribe_url=unsubscribe_url(token),
        )
        rendered = render_message(
            subject=subject, body_html=body_html, body_text=body_text, context=context
        )
        prepared.append((record, token, rendered))

    now = timezone.now()
    with transaction.atomic():
        batch = SendBatch.objects.create(
            organization=organization,
            sender=sender,
            module=module,
            template=template,
            subject=subject,
            body_html=body_html,
            body_text=body_text,
            total=len(records),
            skipped=[
                {
                    "id": record.pk,
                    "name": record.display_name(recipient_language(record, language)),
                    "reason": reason,
                }
                for record, reason in skipped
            ],
            created_at=now,
        )
        messages = OutgoingMessage.objects.bulk_create(
            [
                OutgoingMessage(
                    organization=organization,
                    batch=batch,
                    sender=sender,
                    recipient_name=record.display_name(recipient_language(record, language)),
                    to_address=record.email,
                    from_address=from_address,
                    reply_to=sender.email,
                    subject=rendered.subject,
                    body_html=rendered.html,
                    body_text=rendered.text,
                    message_id=_message_id(),
                    unsubscribe_token=token,
                    recipient_only=list(rendered.recipient_only),
                    next_attempt_at=now,
                    **_record_fields(record),
                )
                for record, token, rendered in prepared
            ],
            batch_size=500,
        )
        activities = [
            Activity(
                organization=organization,
                kind=ActivityKind.EMAIL_QUEUED,
                summary=message.subject[:500],
                data={"batch": batch.pk, "to": message.to_address},
                actor=sender,
                created_at=now,
                **_record_fields(record),
            )
            for message, (record, _token, _rendered) in zip(messages, prepared, strict=True)
        ]
        activities += [
            Activity(
                organization=organization,
                kind=ActivityKind.EMAIL_SKIPPED,
                summary=_skip_summary(subject, reason, language),
                data={"batch": batch.pk, "reason": reason},
                actor=sender,
                created_at=now,
                **_record_fields(record),
            )
            for record, reason in skipped
        ]
        Activity.objects.bulk_create(activities, batch_size=500)
    return batch


def _sender(message: OutgoingMessage) -> User | None:
    """The member who sent it; None if that member was deleted since."""
    if message.sender_id is None:
        return None
    return User.objects.filter(pk=message.sender_id).only("email").first()


def build_email(message: OutgoingMessage) -> EmailMessage:
    """The MIME message for one outbox row, with RFC 8058 one-click unsubscribe headers."""
    unsubscribe = unsubscribe_url(message.unsubscribe_token)
    email = EmailMultiAlternatives(
        subject=message.subject,
        body=message.body_text,
        from_email=message.from_address,
        to=[formataddr((message.recipient_name, message.to_address))],
        reply_to=[message.reply_to] if message.reply_to else None,
        headers={
            "Message-ID": message.message_id,
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
    if message.body_html:
        email.attach_alternative(message.body_html, "text/html")
    # The member who sent the batch reads it in the local mailbox without the links that
    # are the recipient's (unsubscribe, a personal survey link).
    return mailbox.mark(
        email,
        kind=mailbox.MailKind.CRM_MESSAGE,
        sent_by=_sender(message),
        secrets=[message.unsubscribe_token, *message.recipient_only],
    )


def _activity(message: OutgoingMessage, kind: str, summary: str, **data: Any) -> Activity:
    return Activity.objects.create(
        organization_id=message.organization_id,
        lead_id=message.lead_id,
        contact_id=message.contact_id,
        kind=kind,
        summary=summary[:500],
        data={"batch": message.batch_id, "message": message.pk, "to": message.to_address, **data},
        actor_id=message.sender_id,
    )


def _fail(message: OutgoingMessage, *, error: str, retry: bool, **fields: Any) -> None:
    with transaction.atomic():
        leases.mark_failed(message, error=error, retry=retry, **fields)
        if message.status == WorkStatus.FAILED:
            _activity(
                message, ActivityKind.EMAIL_FAILED, f"{message.subject} ({error})", error=error
            )


def _mark_sent(message: OutgoingMessage) -> Activity | None:
    """Commit "sent" (only the lease holder can) with the timeline entry, in one transaction."""
    with transaction.atomic():
        if not leases.mark_done(message, sent_at=timezone.now()):
            return None
        return _activity(message, ActivityKind.EMAIL_SENT, message.subject)


def _reopen(message: OutgoingMessage, sent: Activity, *, error: str, retry: bool) -> None:
    """The server refused the message after we had committed it as sent: undo that."""
    with transaction.atomic():
        # Back to "leased" under the same fence, so the failure is recorded like any other.
        reopened = OutgoingMessage.objects.filter(
            pk=message.pk,
            status=WorkStatus.DONE,
            leased_by=message.leased_by,
            attempts=message.attempts,
        ).update(status=WorkStatus.LEASED)
        if not reopened:
            return
        message.status = WorkStatus.LEASED
        sent.delete()
        _fail(message, error=error, retry=retry, sent_at=None, finished_at=None)


def send_outgoing_message(message: OutgoingMessage) -> None:
    """The worker's handler for one outbox row (see transport.py for the ordering)."""
    email = build_email(message)
    connection = transport.backend()
    if not isinstance(connection, SmtpBackend):
        _send_through_backend(message, email, connection)
        return
    delivery = transport.SmtpDelivery(connection, email)
    try:
        delivery.begin()
    except transport.PermanentSendError as error:
        _fail(message, error=str(error), retry=False)
        return
    except transport.TemporarySendError as error:
        _fail(message, error=str(error), retry=True)
        return
    try:
        sent = _mark_sent(message)
    except BaseException:
        delivery.abandon()
        raise
    if sent is None:
        # Another worker holds this row now: it sends the message, we must not.
        delivery.abandon()
        return
    try:
        delivery.finish()
    except transport.PermanentSendError as error:
        _reopen(message, sent, error=str(error), retry=False)
    except transport.TemporarySendError as error:
        _reopen(message, sent, error=str(error), retry=True)


def _send_through_backend(message: OutgoingMessage, email: EmailMessage, connection: Any) -> None:
    # Non-SMTP backends (the local mailbox, tests' locmem) accept a message in one
    # call; the database transaction around it rolls "sent" back if it raises.
    try:
        transport.envelope(email)
    except transport.PermanentSendError as error:
        _fail(message, error=str(error), retry=False)
        return
    try:
        with transaction.atomic():
            if _mark_sent(message) is None:
                return
            connection.send_messages([email])
    except Exception as error:
        transport.reset()
        message.status = WorkStatus.LEASED  # the rollback undid mark_done
        _fail(message, error=f"{type(error).__name__}: {error}", retry=True)


# Unsubscribing --------------------------------------------------------------


def find_message_by_token(token: str) -> OutgoingMessage | None:
    return (
        OutgoingMessage.objects.select_related("organization", "lead", "contact")
        .filter(unsubscribe_token=token)
        .first()
    )


def unsubscribe(*, message: OutgoingMessage, one_click: bool) -> bool:
    """Set the recipient's email opt-out; False if it was already set (or the record is gone)."""
    record = message.record
    if record is None:
        return False
    now = timezone.now()
    with transaction.atomic():
        updated = (
            type(record)
            .objects.filter(pk=record.pk, email_opt_out=False)
            .update(email_opt_out=True, modified_at=now)
        )
        if updated:
            Activity.objects.create(
                organization_id=message.organization_id,
                lead_id=message.lead_id,
                contact_id=message.contact_id,
                kind=ActivityKind.UNSUBSCRIBED,
                summary=message.to_address,
                data={"message": message.pk, "batch": message.batch_id, "one_click": one_click},
                created_at=now,
            )
    record.email_opt_out = True
    return bool(updated)
