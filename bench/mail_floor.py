"""The floor of P3 (issue 11): how close to raw smtplib can any sender come that records each
message in the database, as "every message sent once per recipient" needs?

Both sides send the same N messages (built beforehand, not timed) to the same aiosmtpd server
(a process of its own), with the same SMTP connections in parallel, in alternating rounds:

1. The baseline: raw smtplib, one thread and one kept-open connection per connection
   (crm_mail_send.raw_smtplib, what P3 compares against).
2. The floor: the same threads and connections, but each message is a row of a table in
   the database (SQLite in WAL, or PostgreSQL), queued beforehand; each thread claims rows
   in batches (one UPDATE ... RETURNING in autocommit, SKIP LOCKED on PostgreSQL), sends
   them, and marks its batch sent with a timeline row each, in one transaction. No Django,
   no rendering, no lease renewal, no fence check before sending: less than any real
   outbox does. What this reaches is an upper bound for Kizuna's P3 ratio on this machine.

    .venv/bin/python bench/mail_floor.py [--count 10000] [--connections 8] [--batch 16]
        [--rounds 3] [--databases sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from _harness import (  # noqa: E402
    SmtpSink,
    in_threads,
    load_average,
    machine,
    postgres_database,
    quick,
    wait_for,
)
from crm_mail_send import Envelope, raw_smtplib  # noqa: E402

BODY = (
    "Dear customer,\n\nThank you for your order. We would like to hear how it went: "
    "please answer our short survey at the link below.\n\n"
) * 4


def envelopes(count: int) -> list[Envelope]:
    """`count` plain-text messages about the size of the CRM's (about 1.3 KB each)."""
    made = []
    for number in range(count):
        message = EmailMessage()
        message["From"] = "Ada Lovelace <ada@example.com>"
        message["To"] = f"lead{number}@example.com"
        message["Subject"] = f"How did we do, lead {number}?"
        message["Message-ID"] = f"<{uuid.uuid4().hex}@kizuna.example>"
        message.set_content(BODY)
        made.append(("ada@example.com", [f"lead{number}@example.com"], message.as_bytes()))
    return made


class _Connection:
    """A connection in autocommit; the writes of a batch go into one transaction of their own
    (BEGIN IMMEDIATE on SQLite: the write lock up front)."""

    def __init__(self, connection: Any, begin: str) -> None:
        self.connection = connection
        self.begin_sql = begin

    def __enter__(self) -> _Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.connection.close()

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self.connection.execute(sql, params)

    def begin(self) -> None:
        self.connection.execute(self.begin_sql)

    def commit(self) -> None:
        self.connection.execute("COMMIT")


@dataclass(frozen=True)
class Database:
    """A table of queued messages and one of timeline rows, in SQLite or PostgreSQL: how each
    spells a parameter, a bytes column and a claim that skips rows another thread holds."""

    connect: Callable[[], _Connection]
    placeholder: str
    blob: str
    skip_locked: str

    def claim_sql(self, batch: int) -> str:
        p = self.placeholder
        return (
            f"UPDATE floor_message SET status = 1, leased_by = {p} WHERE id IN"
            f" (SELECT id FROM floor_message WHERE status = 0 ORDER BY id LIMIT {batch}"
            f"{self.skip_locked}) RETURNING id, sender, recipient, data"
        )

    def fill(self, items: list[Envelope]) -> None:
        p = self.placeholder
        with self.connect() as connection:
            connection.execute("DROP TABLE IF EXISTS floor_timeline")
            connection.execute("DROP TABLE IF EXISTS floor_message")
            connection.execute(
                "CREATE TABLE floor_message (id INTEGER PRIMARY KEY, status INTEGER NOT NULL,"
                f" leased_by TEXT, sent_at REAL, sender TEXT, recipient TEXT, data {self.blob})"
            )
            connection.execute(
                "CREATE TABLE floor_timeline (message_id INTEGER NOT NULL, at REAL NOT NULL)"
            )
            connection.begin()
            connection.connection.cursor().executemany(
                f"INSERT INTO floor_message (id, status, sender, recipient, data)"
                f" VALUES ({p}, {p}, {p}, {p}, {p})",
                [
                    (number, 0, sender, recipients[0], data)
                    for number, (sender, recipients, data) in enumerate(items)
                ],
            )
            connection.commit()

    def counts(self) -> tuple[int, int]:
        with self.connect() as connection:
            sent = connection.execute(
                "SELECT count(*) FROM floor_message WHERE status = 2"
            ).fetchone()[0]
            timeline = connection.execute("SELECT count(*) FROM floor_timeline").fetchone()[0]
        return sent, timeline


def sqlite_database(path: Path) -> Database:
    def connect() -> _Connection:
        connection = sqlite3.connect(path, timeout=30, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        return _Connection(connection, "BEGIN IMMEDIATE")

    return Database(connect, placeholder="?", blob="BLOB", skip_locked="")


def postgresql_database(url: str) -> Database:
    def connect() -> _Connection:
        import psycopg

        return _Connection(psycopg.connect(url, autocommit=True), "BEGIN")

    return Database(connect, placeholder="%s", blob="BYTEA", skip_locked=" FOR UPDATE SKIP LOCKED")


def floor_send(database: Database, port: int, connections: int, batch: int) -> float:
    """Seconds for `connections` threads to claim, send and mark every queued message."""
    import smtplib

    errors: list[BaseException] = []
    p = database.placeholder

    def work(number: int) -> None:
        try:
            worker = f"floor-{number}"
            client = smtplib.SMTP("127.0.0.1", port)
            client.ehlo()
            with database.connect() as connection:
                claim = database.claim_sql(batch)
                while True:
                    rows = connection.execute(claim, (worker,)).fetchall()
                    if not rows:
                        break
                    for _id, sender, recipient, data in rows:
                        client.sendmail(sender, [recipient], bytes(data))
                    ids = [row[0] for row in rows]
                    now = time.time()
                    marks = ", ".join([p] * len(ids))
                    connection.begin()
                    connection.execute(
                        f"UPDATE floor_message SET status = 2, sent_at = {p}"
                        f" WHERE leased_by = {p} AND id IN ({marks})",
                        (now, worker, *ids),
                    )
                    values = ", ".join([f"({p}, {p})"] * len(ids))
                    connection.execute(
                        f"INSERT INTO floor_timeline (message_id, at) VALUES {values}",
                        tuple(value for id_ in ids for value in (id_, now)),
                    )
                    connection.commit()
            client.quit()
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    seconds = in_threads([partial(work, number) for number in range(connections)])
    if errors:
        raise errors[0]
    return seconds


def rounds(
    name: str,
    database: Database,
    items: list[Envelope],
    args: argparse.Namespace,
    sink: SmtpSink,
) -> None:
    ratios = []
    for number in range(1, args.rounds + 1):
        sink.clear()
        started_cpu = time.process_time()
        baseline = raw_smtplib(sink.port, items, args.connections)
        baseline_cpu = time.process_time() - started_cpu
        database.fill(items)
        sink.clear()
        started_cpu = time.process_time()
        floor = floor_send(database, sink.port, args.connections, args.batch)
        floor_cpu = time.process_time() - started_cpu
        sent, timeline = database.counts()
        wait_for(
            lambda: sink.count() >= len(items),
            timeout=60,
            what="the SMTP server to hold every message",
        )
        held = sink.count()
        if (sent, timeline, held) != (len(items), len(items), len(items)):
            raise SystemExit(f"{name}: sent {sent}, timeline {timeline}, server {held}")
        ratio = baseline / floor
        ratios.append(ratio)
        print(
            f"{name} round {number}: raw smtplib {len(items) / baseline:,.0f} msg/s"
            f" ({baseline_cpu / len(items) * 1000:.2f} ms CPU a message),"
            f" floor {len(items) / floor:,.0f} msg/s"
            f" ({floor_cpu / len(items) * 1000:.2f} ms CPU a message), ratio {ratio:.2f};"
            f" {load_average()}",
            flush=True,
        )
    print(f"{name}: floor ratio, median of {args.rounds}: {statistics.median(ratios):.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000 if quick() else 10_000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1 if quick() else 3)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    items = envelopes(args.count)
    print(
        f"{machine()}; {args.count:,} messages, {args.connections} connections, claims of"
        f" {args.batch}"
    )
    with tempfile.TemporaryDirectory() as directory:
        sink = SmtpSink(Path(directory))
        try:
            chosen = args.databases.split(",")
            if "sqlite" in chosen:
                rounds(
                    "SQLite", sqlite_database(Path(directory) / "floor.sqlite3"), items, args, sink
                )
            if "postgresql" in chosen:
                with postgres_database("bench_mail_floor") as url:
                    if url is not None:
                        rounds("PostgreSQL", postgresql_database(url), items, args, sink)
        finally:
            sink.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
