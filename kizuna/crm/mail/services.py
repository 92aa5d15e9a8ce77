"""Every write of CRM mail: templates, queueing a send, the worker's handler, unsubscribing."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import formataddr, make_msgid, parseaddr
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend
from django.db import connections, router, transaction
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import timezone
from django.utils.translation import gettext, override

from kizuna.crm.audit import services as audit
from kizuna.crm.audit.models import AuditAction
from kizuna.crm.mail import transport
from kizuna.crm.mail.extensions import (
    PREPARE_PART_SIZE,
    MergeContext,
    PlaceholderError,
    PrepareContext,
    RecipientRefusal,
    placeholder_namespace,
)
from kizuna.crm.mail.models import BatchPreparation, EmailTemplate, OutgoingMessage, SendBatch
from kizuna.crm.mail.rendering import (
    RECORD_MODEL,
    RenderedMessage,
    html_to_text,
    prepared_placeholders,
    render_message,
    sanitize_html,
)
from kizuna.crm.models import Activity, ActivityKind, Contact, Lead, Organization
from kizuna.identity import mailbox
from kizuna.identity.models import User
from kizuna.lib import prepared as plain
from kizuna.work import lanes, leases, wakeup
from kizuna.work.leases import WorkStatus

logger = logging.getLogger(__name__)

SKIP_OPTED_OUT = "opted_out"
SKIP_NO_EMAIL = "no_email"
SKIP_DELETED = "deleted"  # deleted before its message was prepared
SKIP_REFUSED = "refused"  # an extension could not make this recipient's values (the detail)


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


_PATH_MARK = "kizuna-unsubscribe-mark"
_unsubscribe_paths: dict[tuple[Any, ...], tuple[str, str]] = {}


def unsubscribe_url(token: str) -> str:
    """The one-click unsubscribe link of a message (its token is URL-safe: reverse() would
    leave it as it is). The path around the token is reversed once per URL configuration,
    not once per message: reverse() was a twentieth of a message's CPU in a bulk send."""
    key = (settings.KIZUNA_BASE_URL, get_urlconf(), get_script_prefix())
    around = _unsubscribe_paths.get(key)
    if around is None:
        path = reverse("crm_mail:unsubscribe", args=[_PATH_MARK])
        before, _, after = path.partition(_PATH_MARK)
        around = _unsubscribe_paths[key] = (settings.KIZUNA_BASE_URL + before, after)
    return f"{around[0]}{token}{around[1]}"


def _language_of(user: User | None) -> str:
    return (user.language if user is not None else "") or settings.LANGUAGE_CODE


def _from_address(sender: User) -> str:
    _, address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    return formataddr((sender.get_full_name(), address))


def _message_id_domain() -> str:
    _, address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    return address.rpartition("@")[2] or urlsplit(settings.KIZUNA_BASE_URL).hostname or "kizuna"


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


def _skip_summary(batch: SendBatch, reason: str, language: str, detail: str = "") -> str:
    # The timeline shows the summary as it is: write it in the sender's language.
    with override(language):
        subject = batch.readable_subject()
        if reason == SKIP_REFUSED:
            why = detail
        elif reason == SKIP_OPTED_OUT:
            why = gettext("opted out of email")
        else:
            why = gettext("no email address")
    return f"{subject} ({why})"[:500]


@dataclass(frozen=True)
class _Queued:
    """One recipient's rendered message, ready to be stored in the outbox."""

    record: Lead | Contact
    token: str
    rendered: RenderedMessage


def _render_for(
    *,
    organization: Organization,
    sender: User | None,
    module: str,
    records: Sequence[Lead | Contact],
    subject: str,
    body_html: str,
    body_text: str,
    language: str,
    prepared: Mapping[int, Mapping[tuple[str, str], str]],
) -> list[_Queued]:
    queued = []
    if not body_text.strip():
        # The text part made from the HTML is the same for every recipient before merging.
        body_text = html_to_text(body_html)
    for record in records:
        token = secrets.token_urlsafe(24)
        context = MergeContext(
            organization=organization,
            module=module,
            record=record,
            sender=sender,
            language=recipient_language(record, language),
            unsubscribe_url=unsubscribe_url(token),
            prepared=prepared.get(record.pk, {}),
        )
        rendered = render_message(
            subject=subject, body_html=body_html, body_text=body_text, context=context
        )
        queued.append(_Queued(record, token, rendered))
    return queued


def _prepare_part(
    *,
    organization: Organization,
    sender: User | None,
    module: str,
    language: str,
    placeholders: Mapping[str, frozenset[str]],
    key: str,
    part: int,
    options: Mapping[str, Mapping[str, Any]],
    records: Sequence[Lead | Contact],
) -> tuple[dict[int, dict[tuple[str, str], str]], dict[int, str]]:
    """Have each namespace make its values for these recipients (one call per namespace):
    the values of each recipient, and why a namespace refused some of them."""
    prepared: dict[int, dict[tuple[str, str], str]] = {record.pk: {} for record in records}
    refused: dict[int, str] = {}
    if not records:
        return prepared, refused
    with override(language):
        for name, keys in placeholders.items():
            namespace = placeholder_namespace(name)
            if namespace is None or namespace.prepare is None:
                continue  # unregistered since: rendering refuses its placeholders
            context = PrepareContext(
                organization=organization,
                module=module,
                sender=sender,
                language=language,
                keys=keys,
                batch_key=key,
                part=part,
                options=options.get(name, {}),
            )
            values = namespace.prepare(context, records)
            for record in records:
                made = values.get(record.pk, {})
                if isinstance(made, RecipientRefusal):
                    refused.setdefault(record.pk, made.reason)
                    continue
                for value_key, value in made.items():
                    prepared[record.pk][(name, value_key)] = value
    return prepared, refused


def _store_messages(
    *, batch: SendBatch, sender: User | None, language: str, queued: Sequence[_Queued], now: Any
) -> None:
    """The outbox rows and their "queued" timeline entries, in the caller's transaction.

    Written from tuples of values, without model objects: building an OutgoingMessage and
    an Activity for each recipient, and converting each of their values through its field,
    was most of the worker's CPU for preparing a part of a large send.
    """
    from_address = _from_address(sender) if sender is not None else settings.DEFAULT_FROM_EMAIL
    reply_to = sender.email if sender is not None else ""
    sender_id = sender.pk if sender is not None else None
    domain = _message_id_domain()
    messages = []
    entries = []
    for item in queued:
        record = item.record
        lead_id, contact_id = (record.pk, None) if isinstance(record, Lead) else (None, record.pk)
        summary = item.rendered.summary[:500]
        messages.append(
            {
                "organization_id": batch.organization_id,
                "batch_id": batch.pk,
                "sender_id": sender_id,
                "lead_id": lead_id,
                "contact_id": contact_id,
                "recipient_name": record.display_name(recipient_language(record, language)),
                "to_address": record.email,
                "from_address": from_address,
                "reply_to": reply_to,
                "subject": item.rendered.subject,
                "summary": summary,
                "body_html": item.rendered.html,
                "body_text": item.rendered.text,
                "message_id": make_msgid(idstring="kizuna", domain=domain),
                "unsubscribe_token": item.token,
                "recipient_only": list(item.rendered.recipient_only),
                "next_attempt_at": now,
            }
        )
        entries.append(
            {
                "organization_id": batch.organization_id,
                "lead_id": lead_id,
                "contact_id": contact_id,
                "kind": ActivityKind.EMAIL_QUEUED,
                "summary": summary or item.rendered.subject[:500],
                "data": {"batch": batch.pk, "to": record.email},
                "actor_id": sender_id,
                "created_at": now,
            }
        )
    _insert(OutgoingMessage, messages)
    wakeup.notify(OutgoingMessage)  # the workers wake when this commits
    _insert(Activity, entries)


# Fields whose values of these Python types go to the database as they are: converting
# each through its field (get_db_prep_save) was a third of the cost of writing the rows.
_AS_IS = {
    str: frozenset({"CharField", "TextField", "EmailField"}),
    int: frozenset({"ForeignKey", "PositiveIntegerField", "IntegerField", "BigAutoField"}),
}


def _insert(model: type[OutgoingMessage] | type[Activity], rows: Sequence[dict[str, Any]]) -> None:
    """Plain INSERTs of new rows given as {attname: value} (the fields not named get their
    defaults; ids are not read back): a worker preparing a large send spent more CPU in
    bulk_create's SQL compiler than in rendering the messages. Each value is converted by its
    own field for the database, as bulk_create does, but for plain strings and integers of the
    fields in _AS_IS.

    On PostgreSQL one single-row statement run once a row (executemany, which psycopg sends
    in a pipeline: no round trip a row): psycopg binds the parameters on the client and reads
    a statement's text for its placeholders at every execution unless it is short (4 KB, 50
    parameters), and a 200-row statement of outbox rows cost it 10-12 ms each time, about
    half the CPU of queueing 1,000 messages. Elsewhere 200 rows a statement."""
    if not rows:
        return
    connection = connections[router.db_for_write(model)]
    fields: list[Any] = [field for field in model._meta.concrete_fields if not field.primary_key]
    defaults = {field.attname: field.get_default() for field in fields}
    kinds = [field.get_internal_type() for field in fields]
    names = [field.attname for field in fields]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    table = connection.ops.quote_name(model._meta.db_table)

    def converted(field: Any, kind: str, value: Any) -> Any:
        plain_kinds = _AS_IS.get(type(value))
        if (value is None and kind != "JSONField") or (plain_kinds and kind in plain_kinds):
            return value
        return field.get_db_prep_save(value, connection)

    def values(row: dict[str, Any]) -> list[Any]:
        return [
            converted(field, kind, row.get(name, defaults[name]))
            for field, kind, name in zip(fields, kinds, names, strict=True)
        ]

    placeholders = "(" + ", ".join(["%s"] * len(fields)) + ")"
    head = f"INSERT INTO {table} ({columns}) VALUES "  # noqa: S608
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.executemany(head + placeholders, [values(row) for row in rows])
            return
        for start in range(0, len(rows), 200):
            part = rows[start : start + 200]
            params = [value for row in part for value in values(row)]
            cursor.execute(head + ", ".join([placeholders] * len(part)), params)


def _store_skipped(
    *,
    batch: SendBatch,
    sender: User | None,
    language: str,
    skipped: Sequence[tuple[Lead | Contact, str]],
    now: Any,
    refused: Mapping[int, str] | None = None,
) -> None:
    """The "skipped" timeline entries; `refused`: why an extension refused a recipient."""
    details = refused or {}
    Activity.objects.bulk_create(
        [
            Activity(
                organization_id=batch.organization_id,
                kind=ActivityKind.EMAIL_SKIPPED,
                summary=_skip_summary(batch, reason, language, details.get(record.pk, "")),
                data={"batch": batch.pk, "reason": reason},
                actor=sender,
                created_at=now,
                **_record_fields(record),
            )
            for record, reason in skipped
        ],
        batch_size=500,
    )


def _skipped_entry(
    record: Lead | Contact, reason: str, language: str, detail: str = ""
) -> dict[str, Any]:
    entry = {
        "id": record.pk,
        "name": record.display_name(recipient_language(record, language)),
        "reason": reason,
    }
    return {**entry, "detail": detail} if detail else entry


def _set_refused_aside(
    records: Sequence[Lead | Contact], refused: Mapping[int, str]
) -> tuple[list[Lead | Contact], list[tuple[Lead | Contact, str]]]:
    """The records that get a message, and those an extension refused (SKIP_REFUSED)."""
    kept = [record for record in records if record.pk not in refused]
    return kept, [(record, SKIP_REFUSED) for record in records if record.pk in refused]


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
    extension_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> SendBatch:
    """Render one message per recipient and queue them in one transaction.

    Records that opted out or have no email address are skipped and reported in
    the batch and on their timelines. Placeholders of extensions are resolved
    before the transaction; a PlaceholderError from one of them queues nothing (one with
    `background` hands the whole preparation to the worker instead).
    Namespaces that prepare their values per batch (extensions.py) get the first
    PREPARE_PART_SIZE recipients now; the worker prepares the others
    (prepare_batch), and their messages are queued as each part is prepared.
    extension_options: per namespace, what the sender chose for it (handed to prepare).
    """
    body_html = sanitize_html(body_html)
    language = _language_of(sender)
    options = dict(extension_options or {})
    sendable: list[Lead | Contact] = []
    skipped: list[tuple[Lead | Contact, str]] = []
    for record in records:
        reason = skip_reason(record)
        if reason:
            skipped.append((record, reason))
        else:
            sendable.append(record)

    placeholders = prepared_placeholders(subject, body_html, body_text)
    # The first part while the sender waits (its refusal refuses the send); the worker
    # does the others, one part after the other, and the batch page shows the progress.
    first = sendable[:PREPARE_PART_SIZE]
    in_parts = bool(placeholders) or len(first) < len(sendable)
    key = secrets.token_urlsafe(24) if in_parts else ""
    try:
        prepared, refused = _prepare_part(
            organization=organization,
            sender=sender,
            module=module,
            language=language,
            placeholders=placeholders,
            key=key,
            part=0,
            options=options,
            records=first if placeholders else [],
        )
    except PlaceholderError as error:
        if not error.background:
            raise
        # A slow service is not a refusal: the worker prepares the first part too (its
        # values are made idempotently), and the sender does not wait for it again.
        first, prepared, refused = [], {}, {}
    served, refused_first = _set_refused_aside(first, refused)
    queued = _render_for(
        organization=organization,
        sender=sender,
        module=module,
        records=served,
        subject=subject,
        body_html=body_html,
        body_text=body_text,
        language=language,
        prepared=prepared,
    )

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
                _skipped_entry(record, reason, language, refused.get(record.pk, ""))
                for record, reason in [*skipped, *refused_first]
            ],
            created_at=now,
        )
        _store_messages(batch=batch, sender=sender, language=language, queued=queued, now=now)
        _store_skipped(
            batch=batch,
            sender=sender,
            language=language,
            skipped=[*skipped, *refused_first],
            now=now,
            refused=refused,
        )
        if in_parts:
            is_complete = len(first) == len(sendable)
            BatchPreparation.objects.create(
                batch=batch,
                key=key,
                language=language,
                options=options,
                record_ids=[record.pk for record in sendable],
                prepared_count=len(first),
                status=WorkStatus.DONE if is_complete else WorkStatus.PENDING,
                finished_at=now if is_complete else None,
                next_attempt_at=now,
            )
            wakeup.notify(BatchPreparation)
    return batch


def prepare_batch(preparation: BatchPreparation) -> None:
    """The worker's handler: prepare the recipients left, part after part, queueing each
    part's messages with its progress in one transaction (a restart resumes after it).

    A temporary PlaceholderError (the service is down) retries later with back-off;
    another ends the send for the recipients not prepared, with its message.
    """
    batch = SendBatch.objects.select_related("organization", "sender").get(pk=preparation.batch_id)
    organization, sender, language = batch.organization, batch.sender, preparation.language
    placeholders = prepared_placeholders(batch.subject, batch.body_html, batch.body_text)
    model = RECORD_MODEL[batch.module]
    while preparation.prepared_count < len(preparation.record_ids):
        start = preparation.prepared_count
        ids = preparation.record_ids[start : start + PREPARE_PART_SIZE]
        found = model.objects.of(organization).in_bulk(ids)
        # Deleted, opted out or without an address since the send was queued: skipped now.
        records: list[Lead | Contact] = []
        skipped: list[tuple[Lead | Contact, str]] = []
        gone = 0
        for record_id in ids:
            record = found.get(record_id)
            if record is None:
                gone += 1
            elif reason := skip_reason(record):
                skipped.append((record, reason))
            else:
                records.append(record)
        try:
            prepared, refused = _prepare_part(
                organization=organization,
                sender=sender,
                module=batch.module,
                language=language,
                placeholders=placeholders,
                key=preparation.key,
                part=start // PREPARE_PART_SIZE,
                options=preparation.options,
                records=records if placeholders else [],
            )
            records, refused_here = _set_refused_aside(records, refused)
            skipped += refused_here
            queued = _render_for(
                organization=organization,
                sender=sender,
                module=batch.module,
                records=records,
                subject=batch.subject,
                body_html=batch.body_html,
                body_text=batch.body_text,
                language=language,
                prepared=prepared,
            )
        except PlaceholderError as error:
            leases.mark_failed(preparation, error=str(error), retry=error.temporary)
            return
        now = timezone.now()
        with transaction.atomic():
            if not leases.update_if_held(preparation, prepared_count=start + len(ids)):
                return  # another worker holds this preparation now
            _store_messages(batch=batch, sender=sender, language=language, queued=queued, now=now)
            _store_skipped(
                batch=batch,
                sender=sender,
                language=language,
                skipped=skipped,
                now=now,
                refused=refused,
            )
            if skipped or gone:
                entries = [
                    _skipped_entry(record, reason, language, refused.get(record.pk, ""))
                    for record, reason in skipped
                ]
                entries += [{"id": None, "name": "", "reason": SKIP_DELETED}] * gone
                SendBatch.objects.filter(pk=batch.pk).update(skipped=[*batch.skipped, *entries])
                batch.skipped = [*batch.skipped, *entries]
    leases.mark_done(preparation)


def _sender(message: OutgoingMessage) -> User | None:
    """The member who sent it; None if that member was deleted since.

    Looked up once per sender for as long as the thread keeps its SMTP connection (the
    messages of a batch have one sender): a member deleted in the middle of a send is
    still named in the messages that connection sends after.
    """
    if message.sender_id is None:
        return None
    senders = transport.connection_cache()
    # reply_to is the sender's address when the batch was queued: a cached sender is
    # never taken for another user with the same id (tests reuse ids).
    key = ("sender", message.sender_id, message.reply_to)
    if key not in senders:
        senders[key] = User.objects.filter(pk=message.sender_id).only("email").first()
    sender: User | None = senders[key]
    return sender


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


def _activity_entry(
    message: OutgoingMessage, kind: str, summary: str, at: datetime, **data: Any
) -> Activity:
    return Activity(
        organization_id=message.organization_id,
        lead_id=message.lead_id,
        contact_id=message.contact_id,
        kind=kind,
        summary=summary[:500],
        data={"batch": message.batch_id, "message": message.pk, "to": message.to_address, **data},
        actor_id=message.sender_id,
        created_at=at,
    )


def _activity(message: OutgoingMessage, kind: str, summary: str, **data: Any) -> Activity:
    entry = _activity_entry(message, kind, summary, timezone.now(), **data)
    entry.save(force_insert=True)
    return entry


def _fail(message: OutgoingMessage, *, error: str, retry: bool, **fields: Any) -> None:
    with transaction.atomic():
        leases.mark_failed(message, error=error, retry=retry, **fields)
        if message.status == WorkStatus.FAILED:
            _activity(
                message,
                ActivityKind.EMAIL_FAILED,
                f"{message.timeline_summary} ({error})",
                error=error,
            )


def _mark_sent_now(message: OutgoingMessage) -> Activity | None:
    """Mark the row sent (only the lease holder can) with its timeline entry, in the
    caller's transaction; None if another worker holds the row now."""
    if not leases.mark_done(message, sent_at=timezone.now()):
        return None
    return _activity(message, ActivityKind.EMAIL_SENT, message.timeline_summary)


def _mark_sent(message: OutgoingMessage) -> Activity | None:
    """Commit "sent" with the timeline entry, in one transaction."""
    with transaction.atomic():
        return _mark_sent_now(message)


def _renew_leases(messages: Sequence[OutgoingMessage]) -> list[bool]:
    """Renew the leases of a batch's messages in one fenced UPDATE; per message, whether
    this worker still held it."""
    until = timezone.now() + timedelta(seconds=OutgoingMessage.lease_seconds)
    return leases.update_each_if_held(messages, leased_until=until)


def _fence(messages: Sequence[OutgoingMessage]) -> list[bool]:
    """The fence before a batch's dots: per message, whether this worker still holds its row
    with at least half a lease left, so that no other worker can take it while the dot is
    sent.

    The rows whose lease (as this worker last set it) ends sooner are renewed, a fenced
    UPDATE; the others are only read, the same fence in a SELECT. A batch is sent moments
    after its claim leased it for a whole lease (and the heartbeat renews every row in hand),
    so its rows are usually only read: writing each of them once more before its dot left a
    row version (and an entry in each of the outbox's indexes) a message for nothing.
    """
    soon = timezone.now() + timedelta(seconds=OutgoingMessage.lease_seconds / 2)
    short = [message for message in messages if not _lease_lasts(message, soon)]
    renewed = dict(zip((message.pk for message in short), _renew_leases(short), strict=True))
    long = [message for message in messages if message.pk not in renewed]
    read = dict(zip((message.pk for message in long), leases.each_held(long), strict=True))
    return [renewed.get(message.pk, read.get(message.pk, False)) for message in messages]


def _lease_lasts(message: OutgoingMessage, until: datetime) -> bool:
    return message.leased_until is not None and message.leased_until >= until


def _commit_without_waiting_for_the_disk() -> str:
    """On PostgreSQL, this sending thread's lease renewals and "sent" marks commit without
    waiting for the disk (lanes.commit_without_waiting_for_the_disk says why that is safe; a
    lane's threads do it already, a handler run outside a lane does it here): each commit
    waited 4-5 ms for the disk, and the sending threads spent 77% of their time behind each
    other's commits (py-spy, 10,000 messages). Returns the database's vendor.
    """
    using = router.db_for_write(OutgoingMessage)
    lanes.commit_without_waiting_for_the_disk(using)
    return str(connections[using].vendor)


def _marked_sent(messages: Sequence[OutgoingMessage], now: datetime, **along: Any) -> list[bool]:
    return leases.update_each_if_held(
        messages,
        status=WorkStatus.DONE,
        finished_at=now,
        leased_until=None,
        last_error="",
        sent_at=now,
        **along,
    )


def _sent_entries_of_held(now: datetime) -> tuple[str, list[Any]]:
    """The INSERT of the timeline entries of the rows a fenced UPDATE marked sent, read from
    its WITH clause `held` (leases.update_each_if_held's followed_by): the same entries as
    _mark_all_sent() writes row by row."""
    connection = connections[router.db_for_write(Activity)]
    quote = connection.ops.quote_name

    def column(model: Any, name: str) -> str:
        return str(quote(model._meta.get_field(name).column))

    entries = ", ".join(column(Activity, name) for name in _SENT_ENTRY_FIELDS)
    row = {field.name: quote(field.column) for field in OutgoingMessage._meta.concrete_fields}
    created_at = Activity._meta.get_field("created_at").get_db_prep_save(now, connection)
    return (
        f"INSERT INTO {quote(Activity._meta.db_table)} ({entries}) "  # noqa: S608
        f"SELECT {row['organization']}, {row['lead']}, {row['contact']}, %s, "
        f"LEFT(COALESCE(NULLIF({row['summary']}, ''), LEFT({row['subject']}, 500)), 500), "
        f"jsonb_build_object('batch', {row['batch']}, 'message', {row['id']}, "
        f"'to', {row['to_address']}), {row['sender']}, %s FROM held ORDER BY {row['id']}",
        [ActivityKind.EMAIL_SENT.value, created_at],
    )


def _mark_all_sent_at_once(messages: Sequence[OutgoingMessage]) -> list[bool]:
    """PostgreSQL: _mark_all_sent() in one statement, committed by itself (autocommit): the
    fenced UPDATE and the INSERT of the marked rows' timeline entries, all or nothing. One
    round trip to the database, which the sending thread waits for, instead of four (BEGIN,
    UPDATE, INSERT, COMMIT)."""
    now = timezone.now()
    return _marked_sent(messages, now, followed_by=_sent_entries_of_held(now))


def _mark_batch_sent(messages: Sequence[OutgoingMessage]) -> list[bool]:
    """A sending thread's "sent" marks for its batch, committed: on PostgreSQL one statement
    (_mark_all_sent_at_once()), elsewhere _mark_all_sent() in a transaction of its own."""
    if connections[router.db_for_write(OutgoingMessage)].vendor == "postgresql":
        return _mark_all_sent_at_once(messages)
    with transaction.atomic():
        return _mark_all_sent(messages)


def _mark_all_sent(messages: Sequence[OutgoingMessage]) -> list[bool]:
    """Mark a batch's messages sent with their timeline entries: one fenced UPDATE and one
    INSERT (the entries of the messages this worker still held), in the caller's transaction."""
    now = timezone.now()
    marked = _marked_sent(messages, now)
    sent = [message for message, is_marked in zip(messages, marked, strict=True) if is_marked]
    if sent:
        connection = connections[router.db_for_write(Activity)]
        sql, params = plain.insert_statement(
            Activity,
            _SENT_ENTRY_FIELDS,
            [
                (
                    message.organization_id,
                    message.lead_id,
                    message.contact_id,
                    ActivityKind.EMAIL_SENT,
                    message.timeline_summary[:500],
                    {"batch": message.batch_id, "message": message.pk, "to": message.to_address},
                    message.sender_id,
                    now,
                )
                for message in sent
            ],
            connection,
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
    return marked


_SENT_ENTRY_FIELDS = (
    "organization_id",
    "lead_id",
    "contact_id",
    "kind",
    "summary",
    "data",
    "actor_id",
    "created_at",
)


def send_outgoing_message(message: OutgoingMessage) -> None:
    """The worker's handler for one outbox row: send_outgoing_messages([message])."""
    send_outgoing_messages([message])


def send_outgoing_messages(messages: Sequence[OutgoingMessage]) -> None:
    """The worker's handler for a batch of outbox rows, in the order transport.py explains:
    each message begun on an SMTP connection of its own (all but the final dot), the batch
    fenced in one statement (_fence(): its leases read, or renewed where they run short), the
    final dot sent for each message this worker still holds (the others dropped unsent), and
    the sent ones marked with their timeline entries in one transaction (on PostgreSQL one
    statement).

    At least once: a row is marked sent only after the server answered 250 to its final dot,
    so a worker killed in between leaves it to be sent again (same Message-ID). Each message
    keeps its own outcome: refused for good (5xx, a message that cannot be built) fails it,
    refused for now (4xx) or a network error retries it later; the others are sent.
    """
    if not messages:
        return
    first = transport.backend()
    if not isinstance(first, SmtpBackend):
        for message in messages:
            _send_through_backend(message, build_email(message), first)
        return
    _commit_without_waiting_for_the_disk()
    batch = [
        (message, transport.SmtpDelivery(connection, build_email(message)))
        for message, connection in zip(
            messages, transport.smtp_backends(len(messages)), strict=True
        )
    ]
    transport.begin_together([delivery for _, delivery in batch])
    begun = [(message, delivery) for message, delivery in batch if delivery.error is None]
    try:
        # One statement (two if some leases run short), in autocommit: a transaction around
        # a renewal cost two more round trips to PostgreSQL, which the sending thread waits for.
        held = _fence([message for message, _ in begun])
    except BaseException:
        for _, delivery in begun:
            delivery.abandon()  # the database failed before the dots: the server discards them
        raise
    finishing = []
    for (message, delivery), is_held in zip(begun, held, strict=True):
        if is_held:
            finishing.append((message, delivery))
        else:
            delivery.abandon()  # another worker holds this row now: it sends the message
    transport.finish_together([delivery for _, delivery in finishing])
    sent = [message for message, delivery in finishing if delivery.error is None]
    if sent:
        marked = _mark_batch_sent(sent)
        for message, is_marked in zip(sent, marked, strict=True):
            if not is_marked:
                logger.warning(
                    "Email %s was taken over by another worker while the server took it: "
                    "it may arrive twice (same Message-ID)",
                    message.pk,
                )
    for message, delivery in batch:
        if delivery.error is not None:
            retry = isinstance(delivery.error, transport.TemporarySendError)
            _fail(message, error=str(delivery.error), retry=retry)


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
