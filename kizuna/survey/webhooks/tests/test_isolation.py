"""A slow endpoint delays nobody else (issue 10, point 1).

A real worker (in a thread, with its lanes) sends to a real HTTP receiver whose
/slow path holds every request until the test lets it go: the healthy endpoint of
another account, and other kinds of work, must be done while /slow still hangs,
and /slow must never hold more than its share of the lane's threads.

/slow hangs until released, however long that takes, and the sender waits for it
longer than any test: "while /slow hangs" is a fact of the run, not a matter of
speed, and the waits' timeouts only bound a broken run (a loaded machine may take
minutes).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from kizuna.survey.models import SurveyAccount
from kizuna.survey.webhooks import services
from kizuna.survey.webhooks.models import Delivery, WebhookEndpoint
from kizuna.testing.processes import wait_for
from kizuna.testing.races import require_postgresql
from kizuna.testing.webhooks import endpoint, publish
from kizuna.testing.worker import POLL_ONLY_WHEN_WOKEN, WorkerThread, sleeping_lane
from kizuna.work import lanes, leases
from kizuna.work.leases import WorkStatus
from kizuna.work.models import ProbeWork

LONGER_THAN_ANY_TEST = 3600
# Only a broken run waits this long for a condition.
TIMEOUT = 300


class GatedReceiver:
    """Answers 204 at once, except on /slow, which waits until `release` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.paths: list[str] = []
        self.waiting_on_slow = 0
        self.most_waiting_on_slow = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.paths.append(self.path)
                if self.path == "/slow":
                    with receiver.lock:
                        receiver.waiting_on_slow += 1
                        receiver.most_waiting_on_slow = max(
                            receiver.most_waiting_on_slow, receiver.waiting_on_slow
                        )
                    receiver.release.wait()
                    with receiver.lock:
                        receiver.waiting_on_slow -= 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"

    def count(self, path: str) -> int:
        with self.lock:
            return self.paths.count(path)


@pytest.fixture
def gated() -> Iterator[GatedReceiver]:
    receiver = GatedReceiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        with override_settings(
            KIZUNA_WEBHOOK_ALLOWED_ORIGINS=(receiver.origin,),
            KIZUNA_WEBHOOK_TIMEOUT_SECONDS=LONGER_THAN_ANY_TEST,
            KIZUNA_WEBHOOK_CONNECT_TIMEOUT_SECONDS=LONGER_THAN_ANY_TEST,
        ):
            yield receiver
    finally:
        receiver.release.set()
        receiver.server.shutdown()
        receiver.server.server_close()


def statuses(endpoint: WebhookEndpoint) -> list[str]:
    return sorted(Delivery.objects.filter(endpoint=endpoint).values_list("status", flat=True))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_p1_a_hanging_endpoint_delays_neither_another_endpoint_nor_other_work(
    gated: GatedReceiver, account: SurveyAccount, carol_account: SurveyAccount
):
    require_postgresql("threads writing at once")
    slow = endpoint(account, gated.origin + "/slow")
    fast = endpoint(carol_account, gated.origin + "/fast")
    publish(account, 6)  # first in line
    publish(carol_account, 4)
    ProbeWork.objects.create(key="other-kind")

    with WorkerThread("isolated", concurrency=8):
        try:
            wait_for(
                lambda: statuses(fast) == [WorkStatus.DONE] * 4,
                timeout=TIMEOUT,
                message="the healthy endpoint gets everything while /slow hangs",
            )
            wait_for(
                lambda: ProbeWork.objects.filter(status=WorkStatus.DONE).exists(),
                timeout=TIMEOUT,
                message="another kind of work is done while /slow hangs",
            )
            assert gated.count("/fast") == 4
            assert statuses(slow).count(WorkStatus.DONE) == 0
        finally:
            # Else the worker could not stop: it finishes the rows in hand first.
            gated.release.set()
        wait_for(
            lambda: statuses(slow) == [WorkStatus.DONE] * 6,
            timeout=TIMEOUT,
            message="/slow gets everything once it answers",
        )

    # A quarter of the lane's eight threads: never more than two requests waiting on /slow.
    assert gated.most_waiting_on_slow == 2
    assert gated.count("/slow") == 6


@pytest.mark.django_db
def test_p1_a_lane_claims_no_more_rows_of_one_endpoint_than_its_share(
    account: SurveyAccount, carol_account: SurveyAccount
):
    first = endpoint(account, "https://93.184.215.14/first")
    second = endpoint(carol_account, "https://93.184.215.14/second")
    publish(account, 5)
    publish(carol_account, 3)
    registration = leases.Registration(
        Delivery, services.deliver, 20, lane_key="endpoint_id", per_key_limit=2
    )
    lane = lanes.Lane(
        registration, worker_id="w", threads=8, poll_seconds=1, should_stop=lambda: False
    )

    assert lane.fill() == 4
    assert lane.fill() == 0

    assert statuses(first) == [WorkStatus.LEASED] * 2 + [WorkStatus.PENDING] * 3
    assert statuses(second) == [WorkStatus.LEASED] * 2 + [WorkStatus.PENDING]
    # The rows given back were not tried: their attempt is not counted.
    assert sorted(Delivery.objects.values_list("attempts", flat=True)) == [0] * 4 + [1] * 4
    assert lane.free_threads() == 4


def updates_of_deliveries(queries: CaptureQueriesContext) -> int:
    table = Delivery._meta.db_table
    return sum(query["sql"].startswith(f'UPDATE "{table}"') for query in queries.captured_queries)


@pytest.mark.django_db
def test_p2_a_lane_leases_only_rows_that_can_run_and_gives_none_back(
    account: SurveyAccount, carol_account: SurveyAccount, monkeypatch
):
    busy = endpoint(account, "https://93.184.215.14/busy")
    fast = endpoint(carol_account, "https://93.184.215.14/fast")
    publish(account, 12)  # first in line: more than the lane has threads
    publish(carol_account, 6)
    lane = lanes.Lane(
        leases.Registration(
            Delivery, services.deliver, 20, lane_key="endpoint_id", per_key_limit=2
        ),
        worker_id="w",
        threads=8,
        poll_seconds=1,
        should_stop=lambda: False,
    )
    # `fast` ran fast lately: it may borrow what the others leave.
    lane._recent_seconds[fast.pk] = deque([0.01] * lanes.FAST_RUNS, maxlen=lanes.FAST_RUNS)

    with CaptureQueriesContext(connection) as first_fill:
        assert lane.fill() == 2  # the eight rows it looked at are all `busy`'s
    with CaptureQueriesContext(connection) as second_fill:
        assert lane.fill() == 4  # `fast`: its two, and two borrowed; two stay free

    assert updates_of_deliveries(first_fill) == 1
    assert updates_of_deliveries(second_fill) == 1
    assert statuses(busy) == [WorkStatus.LEASED] * 2 + [WorkStatus.PENDING] * 10
    assert statuses(fast) == [WorkStatus.LEASED] * 4 + [WorkStatus.PENDING] * 2
    assert Delivery.objects.filter(status=WorkStatus.PENDING).exclude(attempts=0).count() == 0
    assert lane.free_threads() == 2
    assert lane.fill() == 0  # the reserve is for a third endpoint, not for these two


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_p3_a_submitted_event_wakes_the_worker_at_its_commit(
    gated: GatedReceiver, account: SurveyAccount
):
    require_postgresql("LISTEN/NOTIFY")
    fast = endpoint(account, gated.origin + "/fast")
    with WorkerThread("listening", concurrency=2, interval=POLL_ONLY_WHEN_WOKEN) as worker:
        sleeping_lane(worker, Delivery)
        publish(account, 1)

        wait_for(
            lambda: statuses(fast) == [WorkStatus.DONE],
            timeout=TIMEOUT,
            message="the commit of the event woke the worker (it polls once an hour)",
        )
    assert Delivery._meta.label in worker.wakes


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_p1_a_fast_endpoint_alone_borrows_idle_threads_but_never_the_reserve_of_the_others(
    gated: GatedReceiver, account: SurveyAccount, carol_account: SurveyAccount, monkeypatch
):
    require_postgresql("threads writing at once")
    # "Fast" however loaded the machine: every run so far counts as fast.
    monkeypatch.setattr(lanes, "FAST_SECONDS", LONGER_THAN_ANY_TEST)
    busy = endpoint(account, gated.origin + "/slow")
    other = endpoint(carol_account, gated.origin + "/fast")
    gated.release.set()  # /slow answers at once for now
    publish(account, lanes.FAST_RUNS)

    with WorkerThread("lending", concurrency=8):
        try:
            wait_for(
                lambda: statuses(busy) == [WorkStatus.DONE] * lanes.FAST_RUNS,
                timeout=TIMEOUT,
                message="the endpoint's first deliveries, each fast",
            )
            with gated.lock:
                gated.most_waiting_on_slow = 0
            gated.release.clear()  # from now on /slow holds every request
            publish(account, 20)
            # Alone, it gets six of the eight threads: the last two are the others' reserve.
            wait_for(
                lambda: gated.waiting_on_slow == 6,
                timeout=TIMEOUT,
                message="the busy endpoint borrows the idle threads",
            )
            publish(carol_account, 3)
            wait_for(
                lambda: statuses(other) == [WorkStatus.DONE] * 3,
                timeout=TIMEOUT,
                message="another endpoint is served by the reserve meanwhile",
            )
            assert gated.waiting_on_slow == 6
        finally:
            gated.release.set()
        wait_for(
            lambda: statuses(busy) == [WorkStatus.DONE] * (lanes.FAST_RUNS + 20),
            timeout=TIMEOUT,
            message="the busy endpoint gets everything once it answers",
        )

    assert gated.most_waiting_on_slow == 6
    assert gated.count("/slow") == lanes.FAST_RUNS + 20
