from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from kizuna.crm.models import Organization, OrganizationQuerySet


class ImportModule(models.TextChoices):
    LEADS = "leads", _("Leads")
    CONTACTS = "contacts", _("Contacts")


class ImportStatus(models.TextChoices):
    UPLOADED = "uploaded", _("Uploaded")
    CHECKING = "checking", _("Checking")
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SAVING = "saving", _("Saving")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")
    DISCARDED = "discarded", _("Discarded")


IN_PROGRESS = (
    ImportStatus.CHECKING,
    ImportStatus.QUEUED,
    ImportStatus.RUNNING,
    ImportStatus.SAVING,
)
# A job in one of these, with nothing created yet, may be mapped, checked, started
# (again, after failing on bad rows) or discarded.
EDITABLE = (ImportStatus.UPLOADED, ImportStatus.FAILED)


class ImportJob(models.Model):
    """One CSV file a member uploaded to import leads or contacts, and how its import went.

    The decoded text is kept in the row (not on disk) so a worker on another
    machine can read it; it is cleared once the import has finished.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="import_jobs"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("imported by"),
    )
    module = models.CharField(_("module"), max_length=16, choices=ImportModule.choices)
    filename = models.CharField(_("file name"), max_length=255)
    encoding = models.CharField(_("encoding"), max_length=20)
    content = models.TextField(blank=True)
    headers = models.JSONField(default=list)
    row_count = models.PositiveIntegerField(_("rows"), default=0)
    # Column index (as a string) -> field name; unmapped columns are absent.
    mapping = models.JSONField(default=dict)
    # The dry run of a large file, made by the worker (checks.summarize()); empty
    # until then, and again when the mapping changes.
    check_summary = models.JSONField(default=dict, blank=True)
    skip_bad_rows = models.BooleanField(_("skip bad rows"), default=False)
    allow_duplicates = models.BooleanField(_("import duplicates"), default=False)
    status = models.CharField(
        _("status"), max_length=16, choices=ImportStatus.choices, default=ImportStatus.UPLOADED
    )
    processed = models.PositiveIntegerField(_("processed"), default=0)
    created_count = models.PositiveIntegerField(_("created"), default=0)
    skipped_count = models.PositiveIntegerField(_("skipped"), default=0)
    # [{"row": 3, "fields": {"email": {"en": ["..."], "ja": ["..."]}}, "duplicate": ""}, ...]
    problems = models.JSONField(default=list, blank=True)
    # Why the job failed, in the importer's language; failure_texts holds it in
    # every language for whoever reads the page (see texts.py).
    failure = models.TextField(_("failure"), blank=True)
    failure_texts = models.JSONField(default=dict, blank=True)
    # The django-tasks result of the job's latest background check or import: when
    # that task has failed for good (WorkerDied after its last attempt, too), the
    # job is marked failed (services.fail_abandoned_imports).
    task_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(_("uploaded at"), default=timezone.now)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        verbose_name = _("import")
        verbose_name_plural = _("imports")
        indexes: ClassVar = [
            models.Index(fields=["organization", "-created_at"], name="crm_import_recent"),
        ]

    def __str__(self) -> str:
        return self.filename

    @property
    def failure_message(self) -> str:
        """Why the job failed, in the reader's language."""
        from kizuna.crm.imports.texts import in_readers_language

        return str(in_readers_language(self.failure_texts) or self.failure)

    @property
    def is_finished(self) -> bool:
        return self.status in {ImportStatus.DONE, ImportStatus.FAILED, ImportStatus.DISCARDED}

    @property
    def is_in_progress(self) -> bool:
        return self.status in IN_PROGRESS

    @property
    def is_editable(self) -> bool:
        """The file is still here and may be mapped, checked, started or discarded."""
        return self.status in EDITABLE and self.created_count == 0 and bool(self.content)

    @property
    def percent(self) -> int:
        if self.status == ImportStatus.DONE:
            return 100
        if not self.row_count:
            return 0
        return min(100, self.processed * 100 // self.row_count)
