"""A contact with 1,000 survey responses: its page with the Survey section (E1, issue #7).

Co-deployed Kizuna (bench/_integration.py: web in gunicorn 2 x 8 threads), the integration
enabled. Contacts of one organization: "many" with 1,000 invitations and 1,000 responses of
four answers each (NPS, choice, matrix, text), "ten" with 10 of each, "none" with no survey
history (the baseline: the same page without a Survey history to show). Ada, signed in,
asks for the pages over HTTP one request at a time, alternating between "many" and "none" so
both see the same load; p50 and p95 of each. The database queries of each page are counted in
this process (Django's test client): the Survey section reads a bounded number of rows, so
"many" must take exactly as many queries as "ten".

    .venv/bin/python bench/integration_contact_page.py [--requests 300]
        [--databases postgresql,sqlite] [--port N] [--record]   (KIZUNA_BENCH_QUICK=1: 60 requests)
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _harness import analyze, load_average, machine, quick, record, recording  # noqa: E402
from _integration import Deployment, per_database, percentile, set_up_world  # noqa: E402

TARGET_MS = 150.0
ANSWERS = [
    {"question_id": 1, "kind": "nps", "text": "How likely are you to recommend us?",
     "position": 0, "value": 9, "display": "9"},
    {"question_id": 2, "kind": "single_choice", "text": "How did you hear about us?",
     "position": 1, "value": "b", "display": "A friend"},
    {"question_id": 3, "kind": "matrix", "text": "Rate each", "position": 2,
     "value": {"speed": "good", "price": "poor"}, "display": "Speed: Good; Price: Poor",
     "rows": [["Speed", "Good"], ["Price", "Poor"]]},
    {"question_id": 4, "kind": "short_text", "text": "Anything else?", "position": 3,
     "value": "Quick and friendly service, thank you.",
     "display": "Quick and friendly service, thank you."},
]  # fmt: skip


def history(contact: Any, connection_id: int, count: int) -> None:
    """`count` invitations and responses of `contact`, one a day back in time."""
    from django.utils import timezone

    from kizuna.crm.integration.models import Connection, SurveyInvitation, SurveyResponse

    connection = Connection.objects.get(pk=connection_id)
    now = timezone.now()
    reference = connection.recipient_reference(contact)
    SurveyInvitation.objects.bulk_create(
        SurveyInvitation(
            connection=connection,
            organization_id=contact.organization_id,
            contact=contact,
            survey_id=index + 1,
            survey_title=f"Survey {index}",
            recipient_reference=reference,
            email=contact.email,
            sent_at=now - datetime.timedelta(days=index, hours=1),
            created_at=now - datetime.timedelta(days=index, hours=1),
            completed_at=now - datetime.timedelta(days=index),
        )
        for index in range(count)
    )
    SurveyResponse.objects.bulk_create(
        SurveyResponse(
            connection=connection,
            organization_id=contact.organization_id,
            contact=contact,
            response_id=f"{contact.pk}-{index}",
            recipient_reference=reference,
            survey_id=index + 1,
            survey_title=f"Survey {index}",
            submitted_at=now - datetime.timedelta(days=index),
            answers=ANSWERS,
        )
        for index in range(count)
    )


def child(database_url: str, requests: int, port: int) -> dict[str, Any]:
    import httpx

    with Deployment(database_url if database_url != "sqlite" else "", port=port) as deployment:
        from django.conf import settings
        from django.db import connection as database
        from django.test import Client
        from django.test.utils import CaptureQueriesContext
        from django.urls import reverse

        from kizuna.crm.models import Contact, Organization
        from kizuna.identity.models import User

        deployment.start_web()
        world = set_up_world(leads=0, invite=False)
        organization = Organization.objects.get()
        contacts = {
            name: Contact.objects.create(
                organization=organization, family_name=name.title(), email=f"{name}@example.com"
            )
            for name in ("none", "ten", "many")
        }
        history(contacts["ten"], world.connection_id, 10)
        history(contacts["many"], world.connection_id, 1000)
        analyze()
        ada = User.objects.get(email="ada@example.com")
        host = deployment.url.split("/")[2]
        client = Client(HTTP_HOST=host)
        client.force_login(ada)
        urls = {
            name: reverse("crm:contact-detail", args=[contact.pk])
            for name, contact in contacts.items()
        }
        queries = {}
        for name, url in urls.items():
            client.get(url)  # warm the caches
            with CaptureQueriesContext(database) as captured:
                page = client.get(url)
            assert page.status_code == 200, page.status_code
            queries[name] = len(captured)
        shown = page.content.decode()
        assert "Survey 0<" in shown and "Survey 9<" in shown, "the Survey section is missing"
        cookie = {settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value}
        timings: dict[str, list[float]] = {"none": [], "many": []}
        load_before = load_average()
        with httpx.Client(base_url=deployment.url, cookies=cookie, timeout=30) as http:
            for _warm in range(10):
                for name in timings:
                    http.get(urls[name]).raise_for_status()
            for _ in range(requests):
                for name in timings:
                    started = time.perf_counter()
                    answer = http.get(urls[name])
                    timings[name].append((time.perf_counter() - started) * 1000)
                    assert answer.status_code == 200, answer.status_code
        load_after = load_average()
        vendor = deployment.vendor
    return {
        "vendor": vendor,
        "requests": requests,
        "queries": queries,
        **{f"{name}_p50": statistics.median(values) for name, values in timings.items()},
        **{f"{name}_p95": percentile(values, 0.95) for name, values in timings.items()},
        "load_before": load_before,
        "load_after": load_after,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=30 if quick() else 300)
    parser.add_argument("--databases", default="postgresql" if quick() else "postgresql,sqlite")
    parser.add_argument("--port", type=int, default=0, help="the web server's (default: any free)")
    parser.add_argument("--record", action="store_true", help="write docs/benchmarks.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.requests, args.port)))
        return
    results = per_database(
        __file__,
        args.databases.split(","),
        ["--requests", str(args.requests), "--port", str(args.port)],
    )
    for database, r in results.items():
        q = r["queries"]
        constant = q["many"] == q["ten"]
        line = (
            f"{r['requests']} requests each, one at a time, {database}, {machine()}: contact "
            f"with 1,000 responses p50 {r['many_p50']:.0f} ms, p95 {r['many_p95']:.0f} ms; "
            f"without survey history p50 {r['none_p50']:.0f} ms, p95 {r['none_p95']:.0f} ms; "
            f"queries: none {q['none']}, 10 responses {q['ten']}, 1,000 responses {q['many']}; "
            f"{r['load_before']} before, {r['load_after']} after"
        )
        print(line)
        if args.record or recording():
            record(
                f"I7-contact-1000-responses-p95-ms-{database}",
                r["many_p95"],
                "ms",
                baseline=r["none_p95"],
                ratio=r["many_p95"] / r["none_p95"],
                target=f"<= {TARGET_MS:.0f} ms, as many queries as with 10 responses",
                met=r["many_p95"] <= TARGET_MS and constant,
                note=line,
            )


if __name__ == "__main__":
    main()
