"""What each account and endpoint relies on in webhook delivery (issue 14).

Every test has several endpoints, in Ada's account and in Carol's, so that an
action reaching more than its own endpoint or delivery shows. They go through
the worker, the Survey API and the Settings pages, and describe behaviour only:
the delivery engine may be reworked under them.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone, translation
from standardwebhooks import Webhook

from kizuna.survey.models import SurveyAccount
from kizuna.survey.webhooks import services
from kizuna.survey.webhooks.models import Delivery, WebhookEndpoint
from kizuna.testing.receiver import Answer, Receiver
from kizuna.work.leases import WorkStatus, claim, mark_done, run_due_work

pytestmark = pytest.mark.django_db

WEBHOOKS = "/survey/api/v1/webhooks"
GONE_REASON = "The endpoint answered 410 Gone: it asked to receive no more events."


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    """The worker writes its reasons in the active language: English here, whatever a test
    before this one left active."""
    with translation.override("en"):
        yield


@pytest.fixture
def local(receiver: Receiver) -> Iterator[Receiver]:
    with override_settings(
        KIZUNA_WEBHOOK_ALLOWED_ORIGINS=(receiver.origin,),
        # Generous: a loaded machine must not turn an answer into a timeout here.
        KIZUNA_WEBHOOK_TIMEOUT_SECONDS=15,
        KIZUNA_WEBHOOK_CONNECT_TIMEOUT_SECONDS=15,
    ):
        yield receiver


@pytest.fixture
def endpoints(local: Receiver, account: SurveyAccount, carol_account: SurveyAccount):
    """Ada's endpoints "a" and "b", and Carol's "c", each at its own path of the receiver."""
    made = {}
    for name, owner in (("a", account), ("b", account), ("c", carol_account)):
        endpoint, secret = services.create_endpoint(
            account=owner, url=local.url(f"/{name}"), events=["response.completed"], by=None
        )
        made[name] = (endpoint, secret)
    return made


def publish(account: SurveyAccount, **payload: Any) -> list[Delivery]:
    return services.publish_event(account=account, event_type="response.completed", payload=payload)


def later(endpoint: WebhookEndpoint, label: str) -> Delivery:
    """A delivery to `endpoint` waiting for its next attempt, an hour from now."""
    return Delivery.objects.create(
        endpoint=endpoint,
        event_type="response.completed",
        payload={"data": {"label": label}},
        next_attempt_at=timezone.now() + datetime.timedelta(hours=1),
    )


def dead(endpoint: WebhookEndpoint, label: str) -> Delivery:
    return Delivery.objects.create(
        endpoint=endpoint,
        event_type="response.completed",
        payload={"data": {"label": label}},
        status=WorkStatus.FAILED,
        attempts=26,
        finished_at=timezone.now(),
        last_error="HTTP 503",
    )


def statuses() -> dict[str, str]:
    return {
        d.payload["data"]["label"]: d.status
        for d in Delivery.objects.order_by("pk")
        if "label" in d.payload.get("data", {})
    }


def enabled() -> dict[str, bool]:
    return {e.url.rsplit("/", 1)[1]: e.is_enabled for e in WebhookEndpoint.objects.all()}


def test_a_410_disables_only_its_own_endpoint_and_stops_only_its_deliveries(
    local: Receiver, endpoints, account
):
    (a, _), (b, _), (c, _) = endpoints["a"], endpoints["b"], endpoints["c"]
    later(a, "a-later"), later(b, "b-later"), later(c, "c-later")
    publish(account, label="now")  # to "a" first, then "b"
    publish(account, label="next")  # in the same batch: "a" is disabled by then
    local.answer(Answer(status=410), Answer(status=200), Answer(status=200))

    run_due_work(worker_id="w")

    assert [r.path for r in local.requests] == ["/a", "/b", "/b"]
    stopped = Delivery.objects.get(endpoint=a, payload__data__label="next")
    assert (stopped.status, stopped.attempts, stopped.last_error) == (
        WorkStatus.FAILED,
        1,
        f"The endpoint is disabled: {GONE_REASON}",
    )
    assert not stopped.attempts_made.exists()
    assert enabled() == {"a": False, "b": True, "c": True}
    assert WebhookEndpoint.objects.get(pk=a.pk).disabled_reason == GONE_REASON
    assert statuses() == {
        "a-later": WorkStatus.FAILED,
        "b-later": WorkStatus.PENDING,
        "c-later": WorkStatus.PENDING,
        "next": WorkStatus.DONE,
        "now": WorkStatus.DONE,
    }
    assert Delivery.objects.get(endpoint=a, payload__data__label="now").status == (
        WorkStatus.FAILED
    )
    assert Delivery.objects.get(payload__data__label="a-later").last_error == GONE_REASON


def test_each_delivery_goes_to_its_own_endpoint_signed_with_its_own_secret(
    local: Receiver, endpoints, account
):
    publish(account, label="hello")

    assert run_due_work(worker_id="w") == 2

    by_path = {request.path: request for request in local.requests}
    assert sorted(by_path) == ["/a", "/b"]
    for name in ("a", "b"):
        _, secret = endpoints[name]
        request = by_path[f"/{name}"]
        assert Webhook(secret).verify(request.body, request.headers)["data"] == {"label": "hello"}
    _, secret_of_b = endpoints["b"]
    with pytest.raises(Exception, match="No matching signature found"):
        Webhook(secret_of_b).verify(by_path["/a"].body, by_path["/a"].headers)


@pytest.mark.parametrize("status", [300, 301, 302, 303, 307, 308])
def test_a_3xx_answer_is_not_a_delivery_and_is_tried_again(local: Receiver, endpoints, status):
    (c, _) = endpoints["c"]
    [delivery] = publish(c.account, label="x")
    local.answer(Answer(status=status, headers=(("Location", local.url("/elsewhere")),)))

    run_due_work(worker_id="w")

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        WorkStatus.PENDING,
        1,
        f"HTTP {status}",
    )
    assert [r.path for r in local.requests] == ["/c"]


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_any_2xx_answer_is_a_delivery(local: Receiver, endpoints, status):
    (c, _) = endpoints["c"]
    [delivery] = publish(c.account, label="x")
    local.answer(Answer(status=status))

    run_due_work(worker_id="w")

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (WorkStatus.DONE, 1, "")


# --- Settings > Webhooks: enable and replay --------------------------------------------------


def enable_url(endpoint: WebhookEndpoint) -> str:
    return reverse("survey:survey_webhooks:endpoint-enable", args=[endpoint.pk])


def replay_url(delivery: Delivery) -> str:
    return reverse(
        "survey:survey_webhooks:delivery-replay", args=[delivery.endpoint_id, delivery.pk]
    )


def test_enabling_an_endpoint_enables_that_endpoint_only(ada_client: Client, endpoints):
    for name in ("a", "b", "c"):
        services.disable_endpoint(endpoint=endpoints[name][0], reason="410")

    response = ada_client.post(enable_url(endpoints["a"][0]))

    assert response.status_code == 302
    assert enabled() == {"a": True, "b": False, "c": False}
    assert WebhookEndpoint.objects.get(pk=endpoints["b"][0].pk).disabled_reason == "410"


def test_replaying_a_delivery_sends_that_delivery_only_again(
    ada_client: Client, local: Receiver, endpoints
):
    (a, _), (b, _), (c, _) = endpoints["a"], endpoints["b"], endpoints["c"]
    first = dead(a, "a-1")
    dead(a, "a-2"), dead(b, "b-1"), dead(c, "c-1")

    response = ada_client.post(replay_url(first))

    assert response.status_code == 302
    assert statuses() == {
        "a-1": WorkStatus.PENDING,
        "a-2": WorkStatus.FAILED,
        "b-1": WorkStatus.FAILED,
        "c-1": WorkStatus.FAILED,
    }
    assert list(Delivery.objects.exclude(pk=first.pk).values_list("max_attempts", flat=True)) == [
        26,
        26,
        26,
    ]
    assert run_due_work(worker_id="w") == 1
    assert [(r.path, r.headers["webhook-id"]) for r in local.requests] == [("/a", first.message_id)]


def test_a_delivery_being_sent_cannot_be_replayed_and_is_sent_once(
    ada_client: Client, local: Receiver, endpoints, account
):
    publish(account, label="in-flight")
    [in_flight] = claim(Delivery.objects.filter(endpoint=endpoints["a"][0]), worker_id="w")

    response = ada_client.post(replay_url(in_flight), follow=True)

    assert [str(m) for m in response.context["messages"]] == [
        "This delivery is being sent right now; try again shortly."
    ]
    stored = Delivery.objects.get(pk=in_flight.pk)
    assert (stored.status, stored.leased_by, stored.attempts, stored.max_attempts) == (
        WorkStatus.LEASED,
        "w",
        1,
        26,
    )
    assert mark_done(in_flight)
    assert run_due_work(worker_id="w") == 1  # the delivery to "b" only
    assert [r.path for r in local.requests] == ["/b"]


# --- Survey API: registering endpoints -------------------------------------------------------


def test_registering_a_url_another_account_uses_gives_a_new_endpoint_and_secret(
    client: Client, ada_sc_headers, carol_sc_headers, endpoints
):
    (a, secret_of_a) = endpoints["a"]

    response = client.post(
        WEBHOOKS,
        {"url": a.url, "events": ["response.completed", "response.deleted"]},
        content_type="application/json",
        **carol_sc_headers,
    )

    assert response.status_code == 201
    body = response.json()
    assert body["id"] != a.pk
    assert body["secret"] != secret_of_a
    assert WebhookEndpoint.objects.get(pk=body["id"]).account.name == "Carol Research"
    a.refresh_from_db()
    assert (a.account.name, a.events) == ("Kizuna Demo", ["response.completed"])
    assert [e["id"] for e in client.get(WEBHOOKS, **ada_sc_headers).json()] == [
        a.pk,
        endpoints["b"][0].pk,
    ]


def test_registering_again_after_a_410_enables_the_endpoint_for_good(
    client: Client, local: Receiver, ada_sc_headers, endpoints, account
):
    (a, secret) = endpoints["a"]
    publish(account, label="before")
    local.answer(Answer(status=410))
    run_due_work(worker_id="w")
    assert enabled()["a"] is False

    response = client.post(
        WEBHOOKS,
        {"url": a.url, "events": ["response.completed"]},
        content_type="application/json",
        **ada_sc_headers,
    )

    assert response.status_code == 200
    assert (response.json()["id"], response.json()["secret"]) == (a.pk, secret)
    assert response.json()["is_enabled"] is True
    stored = WebhookEndpoint.objects.get(pk=a.pk)
    assert (stored.is_enabled, stored.disabled_reason, stored.disabled_at) == (True, "", None)
    local.requests.clear()
    publish(account, label="after")
    run_due_work(worker_id="w")
    assert sorted(r.path for r in local.requests) == ["/a", "/b"]


def test_an_attempt_keeps_the_first_1000_characters_of_the_answer(local: Receiver, endpoints):
    (c, _) = endpoints["c"]
    [delivery] = publish(c.account, label="x")
    local.answer(Answer(status=500, body=b"e" * 999 + b"fg" + b"h" * 50))

    run_due_work(worker_id="w")

    [attempt] = delivery.attempts_made.all()
    assert (attempt.status_code, attempt.response_body, attempt.error) == (
        500,
        "e" * 999 + "f",
        "",
    )
    assert attempt.duration_ms >= 0


def test_a_disabling_reason_is_kept_within_its_columns(endpoints):
    (a, _) = endpoints["a"]
    pending = later(a, "a-later")

    services.disable_endpoint(endpoint=a, reason="r" * 299 + "st" + "u" * 5000)

    stored = WebhookEndpoint.objects.get(pk=a.pk)
    assert stored.disabled_reason == "r" * 299 + "s"
    assert stored.disabled_at is not None
    pending.refresh_from_db()
    assert pending.last_error == ("r" * 299 + "st" + "u" * 5000)[:4000]
    assert pending.finished_at == stored.disabled_at
    assert (a.is_enabled, a.disabled_at) == (False, stored.disabled_at)


def test_event_times_are_utc_with_a_z(endpoints, account):
    [delivery, _] = publish(account, label="x")

    assert delivery.payload["timestamp"].endswith("Z")
    assert "+00:00" not in delivery.payload["timestamp"]


# --- payloads, endpoints, replays: what a receiver and an administrator rely on ---------------


def test_a_payload_lists_answers_in_question_order_whether_answers_are_prefetched_or_not(
    survey,
):
    from django.db.models import Prefetch

    from kizuna.survey.models import Answer, Response
    from kizuna.testing.survey_keys import make_response

    # Questions in the reverse order of their ids, answers stored in yet another order.
    for question, position in zip(survey.questions.order_by("pk"), (2, 1, 0), strict=True):
        question.position = position
        question.save(update_fields=["position"])
    started = datetime.datetime(2026, 11, 30, 1, 0, tzinfo=datetime.UTC)
    response = make_response(survey, started_at=started)
    answers = Prefetch("answers", queryset=Answer.objects.select_related("question"))
    prefetched = Response.objects.filter(pk=response.pk).prefetch_related(answers).get()

    plain = services.response_payload(response)

    assert services.response_payload(prefetched) == plain
    assert [a["question"]["position"] for a in plain["answers"]] == [0, 1, 2]
    assert [a["question"]["kind"] for a in plain["answers"]] == [
        "nps",
        "long_text",
        "single_choice",
    ]
    assert plain["started_at"] == "2026-11-30T01:00:00Z"


def test_an_anonymous_surveys_invitation_event_names_no_recipient(survey):
    survey.is_anonymous = True
    survey.save(update_fields=["is_anonymous"])
    invitation = survey.invitations.create(recipient_reference="lead:42")

    assert services.invitation_payload(invitation)["recipient_reference"] == ""


def test_too_long_a_url_or_description_is_refused_naming_both(account):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        services.create_endpoint(
            account=account,
            url="https://93.184.215.14/" + "x" * 1000,
            events=["response.completed"],
            description="d" * 201,
            by=None,
        )

    assert refused.value.message_dict == {
        "url": ["Use at most 1000 characters (this has 1022)."],
        "description": ["Use at most 200 characters (this has 201)."],
    }
    assert WebhookEndpoint.objects.count() == 0


def test_a_url_and_a_description_as_long_as_their_columns_are_kept(account):
    """The limits are the columns' sizes: 1,000 characters of URL and 200 of description
    are allowed, one more is refused (above)."""
    url = "https://93.184.215.14/" + "x" * 978

    endpoint, _secret = services.create_endpoint(
        account=account,
        url=url,
        events=["response.completed"],
        description="d" * 200,
        by=None,
    )

    stored = WebhookEndpoint.objects.get(pk=endpoint.pk)
    assert (len(stored.url), len(stored.description)) == (1000, 200)


def test_registering_records_who_and_the_description_and_keeps_it_when_none_is_given(
    account, ada_member
):
    url = "https://93.184.215.14/crm"
    endpoint, _, created = services.register_endpoint(
        account=account, url=url, events=["response.completed"], by=ada_member.user
    )
    assert created
    assert (endpoint.description, endpoint.created_by) == ("", ada_member.user)

    services.register_endpoint(
        account=account, url=url, events=["response.completed"], by=None, description=" CRM "
    )
    services.register_endpoint(account=account, url=url, events=["response.completed"], by=None)

    stored = WebhookEndpoint.objects.get(pk=endpoint.pk)
    assert (stored.description, stored.created_by) == ("CRM", ada_member.user)


def test_registering_again_with_too_long_a_description_is_refused(account):
    from django.core.exceptions import ValidationError

    url = "https://93.184.215.14/crm"
    services.register_endpoint(account=account, url=url, events=["response.completed"], by=None)

    with pytest.raises(ValidationError) as refused:
        services.register_endpoint(
            account=account, url=url, events=["response.completed"], by=None, description="d" * 201
        )

    assert refused.value.message_dict == {
        "description": ["Use at most 200 characters (this has 201)."]
    }
    assert WebhookEndpoint.objects.get().description == ""


def test_enabling_clears_why_and_when_the_endpoint_was_disabled(endpoints, ada_member):
    (a, _) = endpoints["a"]
    services.disable_endpoint(endpoint=a, reason="410")

    services.enable_endpoint(endpoint=a, by=ada_member.user)

    stored = WebhookEndpoint.objects.get(pk=a.pk)
    assert (stored.is_enabled, stored.disabled_reason, stored.disabled_at) == (True, "", None)
    assert (a.is_enabled, a.disabled_reason, a.disabled_at) == (True, "", None)


def test_a_delivery_stopped_by_a_410_is_sent_at_once_when_replayed(
    ada_client: Client, local: Receiver, endpoints, ada_member
):
    (a, _) = endpoints["a"]
    waiting = later(a, "a-later")  # its next attempt was an hour away
    services.disable_endpoint(endpoint=a, reason="410")
    services.enable_endpoint(endpoint=a, by=ada_member.user)

    ada_client.post(replay_url(waiting))

    assert run_due_work(worker_id="w") == 1
    assert [r.path for r in local.requests] == ["/a"]
    assert Delivery.objects.get(pk=waiting.pk).status == WorkStatus.DONE


def test_the_body_is_compact_json_as_signed(local: Receiver, endpoints):
    (c, secret) = endpoints["c"]
    publish(c.account, label="a b", items=[1, 2])

    run_due_work(worker_id="w")

    [request] = local.requests
    # Compact separators (PostgreSQL may store the keys in another order).
    assert b'"label":"a b"' in request.body
    assert b'"items":[1,2]' in request.body
    assert b'": ' not in request.body
    assert b', "' not in request.body
    assert Webhook(secret).verify(request.body, request.headers)["data"]["items"] == [1, 2]
