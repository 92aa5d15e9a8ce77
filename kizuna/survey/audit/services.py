"""Writing the Survey service's audit trail: the services whose changes it keeps call `record()`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.db import models

from kizuna.lib import audit
from kizuna.survey.audit.models import AuditAction, AuditEntry
from kizuna.survey.models import AccountMember, SurveyAccount

if TYPE_CHECKING:
    from kizuna.identity.models import User


def record(
    *,
    account: SurveyAccount,
    actor: User | None,
    action: AuditAction,
    target: models.Model | None = None,
    data: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Keep who did `action` to `target`; call it inside the transaction of the change itself,
    so the entry exists exactly when the change does. `actor` None is Kizuna itself."""
    return AuditEntry.objects.create(
        account=account,
        action=action,
        **audit.entry_fields(
            actor=actor, target=target, target_text=_target_text(target), data=data
        ),
    )


def _target_text(target: models.Model | None) -> str:
    if target is None:
        return ""
    if isinstance(target, AccountMember):  # a member is the person, not "person @ account"
        return target.user.email
    return str(target)
