"""SC keys: the services communication key of a Survey account member (K1, K2)."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from kizuna.lib import crypto
from kizuna.survey.models import AccountMember


class ServiceKey(models.Model):
    """An SC key: lets another service (the CRM) act as one administrator of one account.

    The key is stored encrypted because its owner must be able to see it again
    (K1); `fingerprint` (a keyed HMAC of the key) finds it in one index lookup.
    Regenerating keeps the old row with `revoked_at` set, so a revoked key is told
    apart from a wrong one (K2). A member has at most one active key.
    """

    member = models.ForeignKey(AccountMember, on_delete=models.CASCADE, related_name="service_keys")
    encrypted_key = models.TextField()
    fingerprint = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)

    class Meta:
        verbose_name = _("SC key")
        verbose_name_plural = _("SC keys")
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["member"],
                condition=models.Q(revoked_at__isnull=True),
                name="survey_keys_one_active_key_per_member",
            )
        ]

    def __str__(self) -> str:
        return f"SC key #{self.pk} of {self.member}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def reveal(self) -> str:
        """The key itself, for its owner's eyes (K1)."""
        return crypto.decrypt_secret(self.encrypted_key)
