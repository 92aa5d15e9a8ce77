"""Email templates, send batches and the outbox of per-recipient messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from kizuna.crm.models import Contact, Lead, Organization, OrganizationQuerySet
from kizuna.work.leases import LeasedWork, WorkStatus


class Module(models.TextChoices):
    LEADS = "leads", _("Leads")
    CONTACTS = "contacts", _("Contacts")


class EmailTemplate(models.Model):
    """A reusable email of one organization for one module, with merge fields.

    body_html is always stored sanitized (nh3); body_text may be empty, then the
    plain-text part is derived from the HTML when a message is rendered.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="email_templates"
    )
    module = models.CharField(_("module"), max_length=16, choices=Module.choices)
    name = models.CharField(_("template name"), max_length=200)
    subject = models.CharField(_("subject"), max_length=500)
    body_html = models.TextField(_("body (HTML)"), blank=True)
    body_text = models.TextField(_("body (plain text)"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    modified_at = models.DateTimeField(_("modified at"), default=timezone.now)

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        verbose_name = _("email template")
        verbose_name_plural = _("email templates")
        indexes: ClassVar = [
            models.Index(fields=["organization", "module", "name"], name="crm_mail_template_name"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: object, **kwargs: object) -> None:
        from kizuna.crm.mail.rendering import sanitize_html

        self.body_html = sanitize_html(self.body_html)
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def using_namespace(cls, organization: Organization, namespace: str) -> list[EmailTemplate]:
        """Templates of the organization with `{{ namespace.<key> }}` placeholders.

        The Survey integration lists these when it is disabled (they are kept as they are).
        """
        from kizuna.crm.mail.rendering import uses_namespace

        return [
            template
            for template in cls.objects.of(organization).order_by("name", "pk")
            if uses_namespace(
                f"{template.subject}\n{template.body_html}\n{template.body_text}", namespace
            )
        ]


class SendBatch(models.Model):
    """One "Send email" action: what was sent, by whom, to which records.

    The subject and bodies are a snapshot taken at send time; the template may
    change or disappear later. Records skipped at send time (opted out, no
    email address) are listed in `skipped`; counts of the others come from the
    batch's OutgoingMessage rows.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="email_batches"
    )
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("sender"),
    )
    module = models.CharField(_("module"), max_length=16, choices=Module.choices)
    template = models.ForeignKey(
        EmailTemplate,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="batches",
        verbose_name=_("template"),
    )
    subject = models.CharField(_("subject"), max_length=500)
    body_html = models.TextField(_("body (HTML)"), blank=True)
    body_text = models.TextField(_("body (plain text)"), blank=True)
    total = models.PositiveIntegerField(_("recipients"), default=0)
    skipped = models.JSONField(_("skipped"), default=list, blank=True)
    created_at = models.DateTimeField(_("sent at"), default=timezone.now)

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        verbose_name = _("email batch")
        verbose_name_plural = _("email batches")
        indexes: ClassVar = [
            models.Index(fields=["organization", "-created_at"], name="crm_mail_batch_recent"),
        ]

    def __str__(self) -> str:
        return self.subject

    def readable_subject(self) -> str:
        """The subject with its placeholders as field names ("[Given name], join us") and
        an extension's as it describes them ("[Survey link: Customer satisfaction]")."""
        from kizuna.crm.mail.rendering import readable_placeholders

        return readable_placeholders(self.subject, self.module, self.organization_id)

    def readable_body(self) -> str:
        """The plain-text body as written, its placeholders shown like the subject's."""
        from kizuna.crm.mail.rendering import html_to_text, readable_placeholders

        text = self.body_text if self.body_text.strip() else html_to_text(self.body_html)
        return readable_placeholders(text, self.module, self.organization_id)

    def progress(self) -> BatchProgress:
        counts = dict(
            self.messages.order_by()
            .values_list("status")
            .annotate(count=models.Count("pk"))
            .values_list("status", "count")
        )
        waiting = counts.get(WorkStatus.PENDING, 0) + counts.get(WorkStatus.LEASED, 0)
        failed = counts.get(WorkStatus.FAILED, 0)
        preparing, preparation_error = 0, ""
        preparation = self.preparation_or_none()
        if preparation is not None:
            # Recipients whose values are not prepared yet have no message yet.
            unprepared = preparation.unprepared_count
            if preparation.status == WorkStatus.FAILED:
                failed += unprepared
                preparation_error = preparation.last_error
            else:
                preparing = unprepared
                waiting += unprepared
                preparation_error = preparation.last_error if preparation.attempts else ""
        return BatchProgress(
            total=self.total,
            waiting=waiting,
            sent=counts.get(WorkStatus.DONE, 0),
            failed=failed,
            skipped=len(self.skipped),
            preparing=preparing,
            preparation_error=preparation_error,
        )

    def preparation_or_none(self) -> BatchPreparation | None:
        try:
            return self.preparation
        except BatchPreparation.DoesNotExist:
            return None


@dataclass(frozen=True)
class BatchProgress:
    """Where a batch stands: every recipient is waiting, sent, failed or skipped."""

    total: int
    waiting: int
    sent: int
    failed: int
    skipped: int
    # Of `waiting`: recipients whose placeholder values are still being prepared.
    preparing: int = 0
    # Why preparing stopped (failed) or is being retried (still preparing).
    preparation_error: str = ""

    @property
    def is_finished(self) -> bool:
        return self.waiting == 0

    @property
    def finished(self) -> int:
        return self.total - self.waiting

    @property
    def percent(self) -> int:
        return 100 if not self.total else round(100 * self.finished / self.total)


class OutgoingMessage(LeasedWork):
    """One rendered email to one lead or contact, waiting in (or gone from) the outbox.

    The worker sends it and marks it done under its lease. message_id is fixed
    when the row is queued, so every attempt carries the same Message-ID.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    # db_index=False: the index (batch, status) below serves every lookup by batch
    # (a batch's messages, its progress, the cascade when a batch is deleted).
    batch = models.ForeignKey(
        SendBatch, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    lead = models.ForeignKey(
        Lead, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    contact = models.ForeignKey(
        Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    recipient_name = models.CharField(_("recipient"), max_length=250, blank=True)
    to_address = models.EmailField(_("to"))
    from_address = models.CharField(_("from"), max_length=300)
    reply_to = models.CharField(_("reply to"), max_length=300, blank=True)
    subject = models.CharField(_("subject"), max_length=1000)
    # The subject as the timeline shows it: personal values (a survey link) described.
    summary = models.CharField(_("summary"), max_length=500, blank=True)
    body_html = models.TextField(_("body (HTML)"), blank=True)
    body_text = models.TextField(_("body (plain text)"))
    # Unique through the constraints in Meta, not unique=True: on PostgreSQL Django gives a
    # unique CharField a second, varchar_pattern_ops index for LIKE 'x%' (which nothing
    # runs), and every row version written (queued, leased, sent) paid an entry in it.
    message_id = models.CharField(_("Message-ID"), max_length=250)
    unsubscribe_token = models.CharField(max_length=64)
    # Values in the message only its recipient may read (personal links): the local
    # mailbox hides them in the copy the sender reads.
    recipient_only = models.JSONField(_("recipient-only values"), default=list, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)

    retry_base_seconds: ClassVar[float] = 60.0
    lease_seconds: ClassVar[int] = 120

    class Meta:
        verbose_name = _("outgoing email")
        verbose_name_plural = _("outgoing emails")
        indexes: ClassVar = [
            models.Index(
                fields=["status", "next_attempt_at", "id"], name="crm_mail_outbox_due_order"
            ),
            models.Index(fields=["batch", "status"], name="crm_mail_outbox_batch"),
        ]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["message_id"], name="crm_mail_outbox_message_id"),
            models.UniqueConstraint(
                fields=["unsubscribe_token"], name="crm_mail_outbox_unsubscribe_token"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.to_address}: {self.subject}"

    @property
    def timeline_summary(self) -> str:
        return self.summary or self.subject[:500]

    @property
    def record(self) -> Lead | Contact | None:
        return self.lead or self.contact

    @property
    def is_finished(self) -> bool:
        return self.status in (WorkStatus.DONE, WorkStatus.FAILED)


class BatchPreparation(LeasedWork):
    """The preparation of a send whose placeholders are made per batch (survey links).

    record_ids are the recipients that get a message, in order; the first
    prepared_count of them have their OutgoingMessage. The first part is prepared
    while the sender waits; the worker prepares the rest, one part after the other,
    each part's messages committed together with prepared_count. FAILED with
    last_error: the send ended for the recipients not prepared (shown on the batch).
    """

    batch = models.OneToOneField(SendBatch, on_delete=models.CASCADE, related_name="preparation")
    # Names the batch to prepare() before the batch row exists (idempotency at a remote service).
    key = models.CharField(max_length=64, unique=True)
    language = models.CharField(_("language"), max_length=16)
    options = models.JSONField(_("options"), default=dict, blank=True)
    record_ids = models.JSONField(_("recipients"), default=list)
    prepared_count = models.PositiveIntegerField(_("prepared"), default=0)

    retry_base_seconds: ClassVar[float] = 30.0
    lease_seconds: ClassVar[int] = 300

    class Meta:
        verbose_name = _("email batch preparation")
        verbose_name_plural = _("email batch preparations")
        indexes: ClassVar = [
            models.Index(
                fields=["status", "next_attempt_at", "id"], name="crm_mail_preparation_due_order"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.batch_id}: {self.prepared_count}/{len(self.record_ids)}"

    @property
    def unprepared_count(self) -> int:
        return len(self.record_ids) - self.prepared_count
