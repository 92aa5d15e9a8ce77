"""CSV export of a lead or contact list, with the list page's filters.

Excel opens UTF-8 CSV as Japanese text only with a byte order mark, and expects
CRLF line ends. Rows are streamed from a server-side cursor so a million rows
never sit in memory.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone, translation
from django.utils.translation import gettext

from kizuna.crm.imports.rows import verbose_name
from kizuna.crm.listing import ListQuery
from kizuna.crm.models import LeadSource, LeadStatus, Organization, model_for

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CHUNK_ROWS = 2000
NAME_COLUMNS = ("id", "family_name", "given_name", "company", "title")
CONTACT_DETAILS = ("email", "phone")
TAIL_COLUMNS = (
    "lead_source",
    "owner__email",
    "postal_code",
    "region",
    "city",
    "street",
    "country",
    "description",
    "email_opt_out",
    "created_at",
    "modified_at",
)
LEAD_COLUMNS = (*NAME_COLUMNS, *CONTACT_DETAILS, "status", *TAIL_COLUMNS)
CONTACT_COLUMNS = (*NAME_COLUMNS, "department", *CONTACT_DETAILS, *TAIL_COLUMNS)


def export_queryset(*, organization: Organization, module: str, query: ListQuery) -> QuerySet[Any]:
    queryset = query.filter(model_for(module).objects.filter(organization=organization))
    return queryset.order_by(*query.sort.ordering)


def guard_cell(value: str) -> str:
    """Keep spreadsheet programs from running a cell as a formula."""
    if value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class _Line:
    """A file-like target for csv.writer that hands back each written line."""

    def write(self, value: str) -> str:
        return value


def export_columns(module: str) -> tuple[str, ...]:
    return LEAD_COLUMNS if module == "leads" else CONTACT_COLUMNS


def header_row(module: str) -> list[str]:
    model = model_for(module)
    labels = []
    for column in export_columns(module):
        if column == "owner__email":
            labels.append(gettext("Owner"))
        elif column == "id":
            labels.append("ID")
        else:
            labels.append(verbose_name(model, column).capitalize())
    return labels


def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if column == "status":
        return str(LeadStatus(value).label) if value in LeadStatus.values else str(value)
    if column == "lead_source":
        return str(LeadSource(value).label) if value else ""
    if column == "email_opt_out":
        return gettext("Yes") if value else gettext("No")
    if column in ("created_at", "modified_at"):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")
    return guard_cell(str(value))


def csv_lines(queryset: QuerySet[Any], module: str, language: str) -> Iterator[bytes]:
    """The export file, one encoded line at a time, starting with the UTF-8 BOM.

    The response is iterated after the view returned: the language is set again here.
    """
    columns = export_columns(module)
    writer = csv.writer(_Line(), lineterminator="\r\n")
    with translation.override(language):
        yield "\ufeff".encode() + writer.writerow(header_row(module)).encode()
        for row in queryset.values_list(*columns).iterator(chunk_size=CHUNK_ROWS):
            cells = [_cell(column, value) for column, value in zip(columns, row, strict=True)]
            yield writer.writerow(cells).encode()
