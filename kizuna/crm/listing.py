"""Lead and contact lists: search, filters, sorting and keyset pagination.

Pages are cut by the values of the last row shown (a cursor), never by OFFSET,
so page 20,000 costs what page 1 costs. Every sort is a column tuple ending in
the id, all in one direction, so PostgreSQL compares it as a row value against
the cursor and walks one of the indexes of models.py (recent, name, company,
and status/owner/source for filtered "recent" lists).

The count under the title is exact up to a limit and "more than N" beyond, so
it never costs more than the limit's rows: read from one index alone for
filters (migration 0006), from the table row by row for search words, hence
the lower limit with words. A first page with fewer rows than a page holds is
its own count.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import F, Func, QuerySet, TextField
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan
from django.utils.dateparse import parse_datetime
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from kizuna.crm.models import Lead

PAGE_SIZE = 50
# Counting a million rows costs more than the page itself: count up to this and
# show "more than 10,000" beyond.
COUNT_LIMIT = 10_000
# With search words each row counted is a visit to the table (a trigram match
# is checked on the row itself): 10,000 of them took 450 ms on the loaded
# 2-core machine of docs/benchmarks.md, 1,000 took 80 ms.
SEARCH_COUNT_LIMIT = 1_000
MAX_SEARCH_TERMS = 5
# A shorter word has no trigram of its own: it matches the start of a word.
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
    """The text a search matches, " FAMILY GIVEN COMPANY EMAIL": the same
    expression as the trigram index of migration 0006, so PostgreSQL can use
    that index. The leading space puts one before every word."""

    template = (
        "UPPER((' ' || %(table)s.family_name || ' ' || %(table)s.given_name || ' ' || "
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
    "family given company email"; a shorter one at the start of a word of it
    (of the family or given name, a word of the company, the email), like a
    phone book. Both are conditions on one trigram index (migration 0006): the
    words of a search are looked up together in one scan of it.
    """
    terms = search_terms(query)
    if not terms:
        return queryset
    queryset = queryset.alias(search_text=SearchText(queryset.model._meta.db_table))
    for term in terms:
        word = term if len(term) >= SUBSTRING_MIN_LENGTH else f" {term}"
        queryset = queryset.filter(search_text__contains=word)
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
    is_first: bool
    # None when the caller asked for no count (the API's pages have none).
    count: int | None = None
    count_is_capped: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def capped_count(queryset: QuerySet[Any], limit: int = COUNT_LIMIT) -> tuple[int, bool]:
    """How many rows, counted up to `limit`, and whether there are more."""
    count = queryset.order_by()[: limit + 1].count()
    return min(count, limit), count > limit


def _row_values(row: Any, sort: Sort) -> list[Any]:
    return [getattr(row, column) for column in sort.columns]


def paginate(
    queryset: QuerySet[Any],
    *,
    sort: Sort,
    after: str = "",
    before: str = "",
    page_size: int | None = None,
    count_limit: int | None = None,
) -> Page:
    """One page of `queryset` in `sort` order, after or before a cursor; with
    `count_limit`, the rows of the whole queryset counted up to it."""
    page_size = page_size or PAGE_SIZE
    page = _page(queryset, sort=sort, after=after, before=before, page_size=page_size)
    if count_limit is not None:
        if page.is_first and page.next_cursor is None:
            page.count, page.count_is_capped = len(page.rows), False
        else:
            page.count, page.count_is_capped = capped_count(queryset, count_limit)
    return page


def _page(queryset: QuerySet[Any], *, sort: Sort, after: str, before: str, page_size: int) -> Page:
    columns = Tuple(*(F(column) for column in sort.columns))
    backward = [c if sort.descending else f"-{c}" for c in sort.columns]
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
        return Page(
            rows=rows,
            next_cursor=encode_cursor(_row_values(rows[-1], sort)) if rows else None,
            previous_cursor=(
                encode_cursor(_row_values(rows[0], sort)) if rows and has_more_before else None
            ),
            is_first=not has_more_before,
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

    @property
    def count_limit(self) -> int:
        """How far its list counts (COUNT_LIMIT, lower with search words)."""
        return SEARCH_COUNT_LIMIT if search_terms(self.search) else COUNT_LIMIT

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
