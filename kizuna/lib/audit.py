"""What the CRM's and the Survey service's audit trails share.

Each service has its own AuditEntry model (they may run with separate databases), with
the same columns: actor, actor_email, action, target_type, target_id, target_repr, data,
created_at. These helpers fill those columns, read an entry as a sentence, and build one
page of the "Audit log" settings page, for both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms
from django.db.models import Model, QuerySet
from django.http import QueryDict
from django.utils.http import urlencode
from django.utils.translation import gettext

from kizuna.lib import cursors

ENTRIES_PER_PAGE = 50


def entry_fields(
    *, actor: Any, target: Model | None, target_text: str, data: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The columns of a new entry for `actor` (a user, or None for Kizuna itself) and `target`;
    the actor's email is kept as text, so the entry still says who after the user is deleted."""
    return {
        "actor": actor,
        "actor_email": actor.email if actor is not None else "",
        "target_type": target._meta.label_lower if target is not None else "",
        "target_id": target.pk if target is not None else None,
        "target_repr": target_text[:200],
        "data": dict(data or {}),
    }


class SentenceValues(dict[str, Any]):
    """The values of an entry's sentence; a name an older entry's data lacks reads as nothing."""

    def __missing__(self, key: str) -> str:
        return ""


def sentence_values(entry: Any) -> SentenceValues:
    """%(actor)s and %(target)s (names), and the entry's data."""
    data = entry.data if isinstance(entry.data, dict) else {}
    return SentenceValues(data, actor=actor_name(entry), target=entry.target_repr)


def actor_name(entry: Any) -> str:
    if entry.actor is not None:
        return str(entry.actor.get_full_name())
    return str(entry.actor_email or gettext("Kizuna"))


def sentence(entry: Any, sentences: Mapping[Any, Any], values: Mapping[str, Any]) -> str:
    """The sentence of the entry's action with `values`; an action with none reads as itself."""
    template = sentences.get(entry.action)
    return str(template) % values if template is not None else str(entry.action)


def log_page(
    entries: QuerySet[Any], form: forms.Form, query: QueryDict, *, size: int = ENTRIES_PER_PAGE
) -> dict[str, Any]:
    """The template context of one page of the audit log: `entries` filtered by the form's
    action and person (none at all when the filters are not valid), newest first."""
    if not form.is_valid():
        entries = entries.none()
    else:
        if form.cleaned_data["action"]:
            entries = entries.filter(action=form.cleaned_data["action"])
        if form.cleaned_data["person"] is not None:
            entries = entries.filter(actor=form.cleaned_data["person"])
    page = cursors.newest_first(entries, before=query.get("before", ""), size=size)
    filters = {name: str(query.get(name)) for name in form.fields if query.get(name)}
    return {
        "form": form,
        "entries": page.rows,
        "is_filtered": bool(filters),
        "is_first_page": page.is_first,
        "filter_query": urlencode(filters),
        "older_query": (
            urlencode({**filters, "before": page.older_cursor}) if page.older_cursor else ""
        ),
    }
