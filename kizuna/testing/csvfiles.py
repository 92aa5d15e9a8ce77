"""CSV files built in the tests, in the encodings people's spreadsheets write."""

from __future__ import annotations

import codecs
import csv
import io

from django.core.files.uploadedfile import SimpleUploadedFile

JA_HEADERS = ["姓", "名", "会社名", "メール", "電話", "役職", "リードソース", "リードステータス"]
EN_HEADERS = [
    "Last Name",
    "First Name",
    "Company",
    "Email",
    "Phone",
    "Title",
    "Lead Source",
    "Lead Status",
]


def csv_text(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


def csv_bytes(rows: list[list[str]], *, encoding: str = "utf-8", bom: bool = False) -> bytes:
    data = csv_text(rows).encode(encoding)
    return codecs.BOM_UTF8 + data if bom else data


def upload(data: bytes, name: str = "people.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="text/csv")


def lead_rows(count: int, *, start: int = 0) -> list[list[str]]:
    return [
        [
            f"Family{n}",
            f"Given{n}",
            f"Company {n}",
            f"person{n}@example.com",
            "03-1234-5678",
            "Manager",
            "Web",
            "New",
        ]
        for n in range(start, start + count)
    ]
