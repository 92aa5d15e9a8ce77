"""Lead and contact lists: search, filters, sorting and keyset pagination.

Pages are cut by the values of the last row shown (a cursor), never by OFFSET,
so page 20,000 costs what page 1 costs. Every sort is a column tuple ending in
the id, all in one direction, so PostgreSQL compares it as a row value against
the cursor and walks one of the indexes of models.py (recent, name, company,
and status/owner/source for filtered "recent" lists).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import F, Func, Q, QuerySet, TextField
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan
from django.db.models.functions import Upper
from django.utils.dateparse import parse_datetime
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from kizuna.crm.models import Lead

PAGE_SIZE = 50
# Counting a million rows costs more than the page itself: count up to this and
# show "10,000+" beyond.
COUNT_LIMIT = 10_000
MAX_SEARCH_TERMS = 5
# Shorter words cannot use a trigram index: they match the start of a name instead.
SUBSTRING_MIN_LENGTH = 3


@dataclass(frozen=True)
class Sort:
    key: str
    label: str | Promise
    columns: tuple[str, ...]
    descending: bool

    @property
    def ordering(self) -> list[str]:
        """The order_by() of this sort: every column in its direction."""
        return [f"-{column}" if self.descending else column for column in self.columns]


SORTS: dict[str, Sort] = {
    sort.key: sort
    for sort in (
        Sort("recent", _("Newest first"), ("created_at", "id"), True),
        Sort("oldest", _("Oldest first"), ("created_at", "id"), False),
        Sort("name", _("Name (A–Z)"), ("family_name", "given_name", "id"), False),
        Sort("-name", _("Name (Z–A)"), ("family_name", "given_name", "id"), True),
        Sort("company", _("Company (A–Z)"), ("company", "id"), False),
        Sort("-company", _("Company (Z–A)"), ("company", "id"), True),
    )
}
DEFAULT_SORT = "recent"


class SearchText(Func):
    """The text a search matches: the same expression as the trigram index of
    migration 0002, so PostgreSQL can use that index."""

    template = (
        "UPPER((%(table)s.family_name || ' ' || %(table)s.given_name || ' ' || "
        "%(table)s.company || ' ' || %(table)s.email))"
    )
    output_field = TextField()

    def __init__(self, table: str) -> None:
        super().__init__(table=f'"{table}"')


def search_terms(query: str) -> list[str]:
    """Whitespace-separated words (full-width spaces too), each must match."""
    return [term.upper() for term in query.split()][:MAX_SEARCH_TERMS]


def apply_search(queryset: QuerySet[Any], query: str) -> QuerySet[Any]:
    """Every word must match: a word of three characters or more anywhere in
    "family given company email" (trigram index); a shorter one, which no trigram
    can find, at the start of the family name, given name or company, like a
    phone book (btree indexes on UPPER(column) text_pattern_ops, migration 0003).
    """
    terms = search_terms(query)
    if not terms:
        return queryset
    table = queryset.model._meta.db_table
    queryset = queryset.alias(
        search_text=SearchText(table),
        family_upper=Upper("family_name"),
        given_upper=Upper("given_name"),
        company_upper=Upper("company"),
    )
    for term in terms:
        if len(term) >= SUBSTRING_MIN_LENGTH:
            queryset = queryset.filter(search_text__contains=term)
        else:
            queryset = queryset.filter(
                Q(family_upper__startswith=term)
                | Q(given_upper__startswith=term)
                | Q(company_upper__startswith=term)
            )
    return queryset


def encode_cursor(values: list[Any]) -> str:
    plain = [value.isoformat() if isinstance(value, datetime) else value for value in values]
    raw = json.dumps(plain, ensure_ascii=False, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: Sort) -> list[Any] | None:
    """The row values in a cursor, or None when it is not one of ours (start over)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    if not isinstance(values, list) or len(values) != len(sort.columns):
        return None
    decoded: list[Any] = []
    for column, value in zip(sort.columns, values, strict=True):
        if column == "id":
            if not isinstance(value, int) or isinstance(value, bool):
                return None
            decoded.append(value)
        elif column == "created_at":
            parsed = parse_datetime(value) if isinstance(value, str) else None
            if parsed is None or parsed.tzinfo is None:
                return None
            decoded.append(parsed)
        else:
            if not isinstance(value, str):
                return None
            decoded.append(value)
    return decoded


@dataclass
class Page:
    rows: list[Any]
    next_cursor: str | None
    previous_cursor: str | None
    count: int
    count_is_capped: bool
    is_first: bool
    extra: dict[str, Any] = field(default_factory=dict)


def capped_count(queryset: QuerySet[Any]) -> tuple[int, bool]:
    """How many rows, counted up to COUNT_LIMIT, and whether there are more."""
    count = queryset.order_by()[: COUNT_LIMIT + 1].count()
    return min(count, COUNT_LIMIT), count > COUNT_LIMIT


def _row_values(row: Any, sort: Sort) -> list[Any]:
    return [getattr(row, column) for column in sort.columns]


def paginate(
    queryset: QuerySet[Any],
    *,
    sort: Sort,
    after: str = "",
    before: str = "",
    page_size: int | None = None,
) -> Page:
    """One page of `queryset` in `sort` order, after or before a cursor."""
    page_size = page_size or PAGE_SIZE
    columns = Tuple(*(F(column) for column in sort.columns))
    backward = [c if sort.descending else f"-{c}" for c in sort.columns]
    count, count_is_capped = capped_count(queryset)

    before_values = decode_cursor(before, sort) if before else None
    after_values = decode_cursor(after, sort) if after and before_values is None else None

    if before_values is not None:
        # Walk backwards from the cursor, then show those rows in the usual order.
        lookup = TupleGreaterThan if sort.descending else TupleLessThan
        rows = list(
            queryset.filter(lookup(columns, before_values)).order_by(*backward)[: page_size + 1]
        )
        has_more_before = len(rows) > page_size
        rows = rows[:page_size][::-1]
        is_first = not has_more_before
        return Page(
            rows=rows,
            next_cursor=encode_cursor(_row_values(rows[-1], sort)) if rows else None,
            previous_cursor=(
                encode_cursor(_row_values(rows[0], sort)) if rows and has_more_before else None
            ),
            count=count,
            count_is_capped=count_is_capped,
            is_first=is_first,
        )

    page_queryset = queryset
    if after_values is not None:
        lookup = TupleLessThan if sort.descending else TupleGreaterThan
        page_queryset = queryset.filter(lookup(columns, after_values))
    rows = list(page_queryset.order_by(*sort.ordering)[: page_size + 1])
    has_more = len(rows) > page_size
    rows = rows[:page_size]
    return Page(
        rows=rows,
        next_cursor=encode_cursor(_row_values(rows[-1], sort)) if has_more else None,
        previous_cursor=(
            encode_cursor(_row_values(rows[0], sort)) if after_values is not None and rows else None
        ),
        count=count,
        count_is_capped=count_is_capped,
        is_first=after_values is None,
    )


@dataclass(frozen=True)
class ListQuery:
    """What a list page was asked for, from its query string."""

    search: str = ""
    statuses: tuple[str, ...] = ()
    owner: str = ""  # a user id, "none" (no owner) or "" (anyone)
    source: str = ""  # a LeadSource value, "none" or "" (any)
    sort: Sort = SORTS[DEFAULT_SORT]
    after: str = ""
    before: str = ""

    def filter(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        queryset = apply_search(queryset, self.search)
        if self.statuses and queryset.model is Lead:
            queryset = queryset.filter(status__in=self.statuses)
        if self.owner == "none":
            queryset = queryset.filter(owner__isnull=True)
        elif self.owner.isdigit():
            queryset = queryset.filter(owner_id=int(self.owner))
        if self.source == "none":
            queryset = queryset.filter(lead_source="")
        elif self.source:
            queryset = queryset.filter(lead_source=self.source)
        return queryset
