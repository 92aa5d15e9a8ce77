"""CRM CSV import and export: rows per second, and export memory that does not grow with rows.

Import: a generated Shift_JIS file of N leads goes through what the pages and the
worker do: create_import_job() (decode, parse, guess the mapping), then
run_import() (validate every row with the record rules, find duplicates by email,
create leads and their timeline entries in one transaction).

Export: M leads are exported through csv_lines() (the streamed response body)
while tracemalloc records the peak of Python allocations: with a server-side
cursor the peak should stay flat as M grows.

The database is a fresh SQLite file in a temporary data dir unless DATABASE_URL
is set (then that database is used as it is: point it at a scratch database).

    .venv/bin/python bench/crm_import_export.py [--import-rows 10000 50000]
        [--export-rows 50000 200000] [--record]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _harness import migrated_sqlite, quick  # noqa: E402

HEADERS = ["姓", "名", "会社名", "メール", "電話", "役職", "リードソース", "リードステータス"]


def shift_jis_file(rows: int, start: int) -> bytes:
    lines = [",".join(HEADERS)]
    for n in range(start, start + rows):
        lines.append(
            f"山田{n},太郎,株式会社キズナ {n % 997},person{n}@example.jp,03-1234-{n % 10000:04d},"
            "部長,ウェブサイト,新規"
        )
    return ("\r\n".join(lines) + "\r\n").encode("cp932")


def main() -> None:
    parser = argparse.ArgumentParser()
    small = quick()
    parser.add_argument(
        "--import-rows", type=int, nargs="+", default=[2_000] if small else [10_000, 50_000]
    )
    parser.add_argument(
        "--export-rows", type=int, nargs="+", default=[5_000] if small else [50_000, 200_000]
    )
    parser.add_argument("--record", action="store_true", help="append to docs/benchmarks.md")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="kizuna-bench-"))
    migrated_sqlite(data_dir)  # a copy of the migrated template: migrate finds nothing to do
    os.environ.update(KIZUNA_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="kizuna.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import translation

    from kizuna.crm.imports import services
    from kizuna.crm.imports.exporting import csv_lines, export_queryset
    from kizuna.crm.listing import ListQuery
    from kizuna.crm.models import Lead, Membership, Organization, Role
    from kizuna.identity.models import User

    call_command("migrate", verbosity=0)
    translation.activate("ja")
    user = User.objects.create_user(f"bench-{time.time_ns()}@example.com", "x")
    rows_out: list[str] = []

    start_at = 0
    for count in args.import_rows:
        organization = Organization.objects.create(name=f"Import {count}")
        Membership.objects.create(organization=organization, user=user, role=Role.ADMINISTRATOR)
        data = shift_jis_file(count, start_at)
        start_at += count
        began = time.perf_counter()
        job = services.create_import_job(
            organization=organization, by=user, module="leads", filename="bench.csv", data=data
        )
        parsed = time.perf_counter()
        services.start_import(job=job, by=user, skip_bad_rows=False, allow_duplicates=False)
        job = services.run_import(job_id=job.pk)
        done = time.perf_counter()
        assert job.created_count == count, (job.status, job.failure)
        total = done - began
        rows_out.append(
            f"| import {count:,} rows (Shift_JIS, {len(data) / 1e6:.1f} MB) | "
            f"{parsed - began:.2f} | {done - parsed:.2f} | {total:.2f} | {count / total:,.0f} |"
        )
        print(rows_out[-1])

    export_rows: list[str] = []
    organization = Organization.objects.create(name="Export")
    made = 0
    for count in sorted(args.export_rows):
        batch = []
        while made < count:
            batch.append(
                Lead(
                    organization=organization,
                    family_name=f"佐藤{made}",
                    given_name="花子",
                    company="=CMD()" if made % 1000 == 0 else f"会社 {made % 997}",
                    email=f"export{made}@example.jp",
                )
            )
            made += 1
            if len(batch) == 5000:
                Lead.objects.bulk_create(batch)
                batch = []
        Lead.objects.bulk_create(batch)
        queryset = export_queryset(organization=organization, module="leads", query=ListQuery())
        tracemalloc.start()
        began = time.perf_counter()
        size = 0
        lines = 0
        for line in csv_lines(queryset, "leads", "ja"):
            size += len(line)
            lines += 1
        elapsed = time.perf_counter() - began
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert lines == count + 1
        export_rows.append(
            f"| export {count:,} rows ({size / 1e6:.1f} MB) | {elapsed:.2f} | "
            f"{count / elapsed:,.0f} | {peak / 1e6:.1f} |"
        )
        print(export_rows[-1])

    machine = (
        f"{os.cpu_count()} cores (shared), Python {platform.python_version()}, "
        f"{connection.vendor}, {datetime.now(UTC):%Y-%m-%d}"
    )
    report = "\n".join(
        [
            "",
            "## CRM CSV import and export",
            "",
            "`bench/crm_import_export.py`: a generated Shift_JIS file of leads imported with",
            "create_import_job() + run_import() (what the upload page and the worker run), and",
            "leads exported through the streamed response body with tracemalloc watching.",
            "",
            machine,
            "",
            "| import | upload + parse s | validate + write s | total s | rows/s |",
            "| --- | ---: | ---: | ---: | ---: |",
            *rows_out,
            "",
            "| export | s | rows/s | peak Python MB |",
            "| --- | ---: | ---: | ---: |",
            *export_rows,
            "",
        ]
    )
    print(report)
    if args.record:
        with (ROOT / "docs" / "benchmarks.md").open("a", encoding="utf-8") as file:
            file.write(report)


if __name__ == "__main__":
    main()
