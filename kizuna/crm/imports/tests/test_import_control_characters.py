"""Issue 9.8 in CSV import: a cell with a line break or a control character in a name
field is an error of its row; the other rows can still be imported."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from kizuna.crm.imports.models import ImportJob, ImportStatus
from kizuna.crm.models import Lead
from kizuna.testing.csvfiles import EN_HEADERS, csv_bytes, lead_rows, upload

START = reverse("crm_imports:start")
REFUSED = "Line breaks and other control characters are not allowed here (found {})."


def test_rows_with_control_characters_in_names_are_reported_and_skipped(
    ada_client: Client,
) -> None:
    rows = [EN_HEADERS, *lead_rows(2)]
    # A quoted cell may hold a line break: the CSV reader keeps it inside the value.
    rows.append(["X\r\nBcc: victim@example.com", "Eve", "", "eve@example.com", "", "", "", ""])
    rows.append(["Mallory", "M", "ACME\x1b[31m", "mallory@example.com", "", "", "", ""])
    ada_client.post(START, {"module": "leads", "file": upload(csv_bytes(rows))})
    job = ImportJob.objects.get()

    preview = ada_client.get(reverse("crm_imports:preview", args=[job.pk]))

    assert preview.context["summary"]["valid"] == 2
    assert preview.context["problems"] == [
        {"row": 4, "fields": [("Family name", [REFUSED.format("U+000D")])], "duplicate": ""},
        {"row": 5, "fields": [("Company", [REFUSED.format("U+001B")])], "duplicate": ""},
    ]

    ada_client.post(reverse("crm_imports:run", args=[job.pk]), {"skip_bad_rows": "on"})

    job.refresh_from_db()
    assert (job.status, job.created_count, job.skipped_count) == (ImportStatus.DONE, 2, 2)
    assert sorted(Lead.objects.values_list("email", flat=True)) == [
        "person0@example.com",
        "person1@example.com",
    ]
