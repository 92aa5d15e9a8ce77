"""The baseline of bench/survey_submit.py: a WSGI app that inserts one row per POST.

Same settings, same database, same gunicorn configuration as Kizuna itself, but
none of Django's request handling: it reads the body, runs one raw INSERT in
autocommit and answers 204. What a submission costs beyond this is the price of
the framework, the validation, the rate limit and the outbox.

    gunicorn bench.baseline_insert_wsgi:application -k gthread -w 2 --threads 8
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kizuna.settings")
django.setup()

from django.db import connection  # noqa: E402  (after django.setup())
from django.utils import timezone  # noqa: E402

TABLE = "bench_baseline_row"


def application(
    environ: dict[str, Any], start_response: Callable[[str, list[tuple[str, str]]], Any]
) -> Iterable[bytes]:
    if environ.get("REQUEST_METHOD") != "POST":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"baseline up\n"]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    # Django keeps one connection per thread (CONN_MAX_AGE), as it does for Kizuna.
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TABLE} (created_at, body) VALUES (%s, %s)",
            [timezone.now(), body.decode("utf-8", "replace")],
        )
    start_response("204 No Content", [])
    return [b""]
