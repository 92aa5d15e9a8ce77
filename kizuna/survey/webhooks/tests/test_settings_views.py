"""Settings > Webhooks: endpoints, deliveries with attempts, replay (administrators only)."""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import formats, timezone, translation

from kizuna.lib import cursors
from kizuna.survey.webhooks import services
from kizuna.survey.webhooks.models import Delivery, DeliveryAttempt, WebhookEndpoint
from kizuna.work.leases import WorkStatus

pytestmark = pytest.mark.django_db

LIST = reverse("survey:survey_webhooks:endpoints")


@pytest.fixture
def endpoint(account, ada_member) -> WebhookEndpoint:
    endpoint, _ = services.create_endpoint(
        account=account,
        url="https://93.184.215.14/hook",
        events=["response.completed"],
        by=ada_member.user,
    )
    return endpoint


@pytest.fixture
def dead_delivery(endpoint) -> Delivery:
    delivery = Delivery.objects.create(
        endpoint=endpoint,
        event_type="response.completed",
        payload={"type": "response.completed", "data": {}},
        status=WorkStatus.FAILED,
        attempts=26,
        finished_at=timezone.now(),
        last_error="HTTP 503",
    )
    DeliveryAttempt.objects.create(
        delivery=delivery, status_code=503, duration_ms=120, error="", response_body="down"
    )
    DeliveryAttempt.objects.create(
        delivery=delivery, status_code=None, duration_ms=10000, error="No answer within 10 seconds"
    )
    return delivery


def urls(endpoint: WebhookEndpoint, delivery: Delivery) -> dict[str, str]:
    return {
        "detail": reverse("survey:survey_webhooks:endpoint", args=[endpoint.pk]),
        "enable": reverse("survey:survey_webhooks:endpoint-enable", args=[endpoint.pk]),
        "delete": reverse("survey:survey_webhooks:endpoint-delete", args=[endpoint.pk]),
        "replay": reverse(
            "survey:survey_webhooks:delivery-replay", args=[endpoint.pk, delivery.pk]
        ),
    }


CREATE = {"url": "https://93.184.215.14/other", "events": ["response.completed"]}


def state(delivery: Delivery) -> tuple[Any, ...]:
    delivery.refresh_from_db()
    return (
        WebhookEndpoint.objects.count(),
        WebhookEndpoint.objects.filter(is_enabled=True).count(),
        delivery.status,
    )


# --- persona matrix -------------------------------------------------------------------------


def test_administrator_sees_endpoints_deliveries_and_attempts(
    ada_client: Client, endpoint, dead_delivery
):
    Delivery.objects.create(endpoint=endpoint, event_type="response.completed", payload={})
    page = ada_client.get(LIST)
    assert page.status_code == 200
    assert list(page.context["endpoints"]) == [endpoint]
    listed = page.context["endpoints"][0]
    assert (listed.pending_count, listed.failed_count) == (1, 1)
    assert "?status=failed" in page.content.decode()

    detail = ada_client.get(urls(endpoint, dead_delivery)["detail"])
    assert detail.status_code == 200
    html = detail.content.decode()
    assert dead_delivery.message_id in html
    assert "503" in html
    assert "No answer within 10 seconds" in html
    assert "10000 ms" in html
    assert "Failed (dead letter)" in html
    assert endpoint.signing_secret() in html


@pytest.mark.parametrize("persona", ["bob_client"])
def test_standard_member_gets_403_everywhere_and_changes_nothing(
    request, persona, endpoint, dead_delivery
):
    client = request.getfixturevalue(persona)
    before = state(dead_delivery)
    paths = urls(endpoint, dead_delivery)

    assert client.get(LIST).status_code == 403
    assert client.post(LIST, CREATE).status_code == 403
    assert client.get(paths["detail"]).status_code == 403
    assert client.post(paths["enable"]).status_code == 403
    assert client.post(paths["replay"]).status_code == 403
    assert client.post(paths["delete"]).status_code == 403
    assert state(dead_delivery) == before


def test_administrator_of_another_account_gets_404_for_this_accounts_endpoint(
    carol_client: Client, endpoint, dead_delivery
):
    before = state(dead_delivery)
    paths = urls(endpoint, dead_delivery)

    assert carol_client.get(LIST).context["endpoints"].count() == 0
    for name in ("detail", "delete"):
        assert carol_client.get(paths[name]).status_code == 404
    for name in ("enable", "replay", "delete"):
        assert carol_client.post(paths[name]).status_code == 404
    assert state(dead_delivery) == before


def test_user_without_a_survey_account_gets_404(charlie_client: Client, endpoint, dead_delivery):
    before = state(dead_delivery)
    paths = urls(endpoint, dead_delivery)
    assert charlie_client.get(LIST).status_code == 404
    assert charlie_client.post(LIST, CREATE).status_code == 404
    assert charlie_client.post(paths["replay"]).status_code == 404
    assert state(dead_delivery) == before


def test_signed_out_visitor_is_sent_to_sign_in(client: Client, endpoint, dead_delivery):
    before = state(dead_delivery)
    paths = urls(endpoint, dead_delivery)
    for path in (LIST, paths["detail"]):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("identity:login"))
    for path in (LIST, paths["enable"], paths["replay"], paths["delete"]):
        assert client.post(path, CREATE).status_code == 302
    assert state(dead_delivery) == before


# --- what administrators can do -------------------------------------------------------------


def test_adding_an_endpoint_shows_its_signing_secret(ada_client: Client, account):
    response = ada_client.post(
        LIST,
        {
            "url": "https://93.184.215.14/new",
            "events": ["response.completed", "invitation.opened"],
            "description": "Staging CRM",
        },
    )

    endpoint = WebhookEndpoint.objects.get(url="https://93.184.215.14/new")
    assert response.status_code == 302
    assert response["Location"] == reverse("survey:survey_webhooks:endpoint", args=[endpoint.pk])
    assert endpoint.account == account
    assert endpoint.events == ["invitation.opened", "response.completed"]
    assert endpoint.description == "Staging CRM"
    page = ada_client.get(response["Location"])
    assert endpoint.signing_secret().startswith("whsec_")
    assert endpoint.signing_secret() in page.content.decode()


@override_settings(KIZUNA_WEBHOOK_ALLOWED_ORIGINS=("http://127.0.0.1:8000",))
def test_a_private_url_is_refused_with_a_clear_error_and_the_form_keeps_what_was_typed(
    ada_client: Client, ada_member
):
    response = ada_client.post(
        LIST, {"url": "http://192.168.0.10/hook", "events": ["response.deleted"]}
    )

    assert response.status_code == 200
    assert response.context["form"].errors["url"] == [
        "This URL points to a private or local network address, which this deployment "
        "does not allow."
    ]
    assert 'value="http://192.168.0.10/hook"' in response.content.decode()
    assert WebhookEndpoint.objects.count() == 0


def test_adding_a_url_that_already_has_an_endpoint_is_a_form_error(ada_client: Client, endpoint):
    response = ada_client.post(
        LIST, {"url": "https://93.184.215.14/hook", "events": ["response.deleted"]}
    )
    assert response.status_code == 200
    assert response.context["form"].errors["url"] == ["This URL already has an endpoint."]
    assert WebhookEndpoint.objects.count() == 1


def test_choosing_no_event_is_a_form_error(ada_client: Client, ada_member):
    response = ada_client.post(LIST, {"url": "https://93.184.215.14/hook"})
    assert response.status_code == 200
    assert "events" in response.context["form"].errors
    assert WebhookEndpoint.objects.count() == 0


def test_replaying_a_dead_delivery_queues_it_now(ada_client: Client, endpoint, dead_delivery):
    response = ada_client.post(urls(endpoint, dead_delivery)["replay"])

    assert response.status_code == 302
    dead_delivery.refresh_from_db()
    assert dead_delivery.status == WorkStatus.PENDING
    assert dead_delivery.next_attempt_at <= timezone.now()
    assert dead_delivery.finished_at is None
    assert dead_delivery.max_attempts == 52


def test_deliveries_can_be_filtered_by_status(ada_client: Client, endpoint, dead_delivery):
    done = Delivery.objects.create(
        endpoint=endpoint, event_type="response.completed", payload={}, status=WorkStatus.DONE
    )
    detail = urls(endpoint, dead_delivery)["detail"]

    assert list(ada_client.get(detail + "?status=done").context["deliveries"]) == [done]
    assert list(ada_client.get(detail + "?status=failed").context["deliveries"]) == [dead_delivery]


def test_a_disabled_endpoint_shows_why_and_can_be_enabled_again(
    ada_client: Client, endpoint, dead_delivery
):
    services.disable_endpoint(endpoint=endpoint, reason="The endpoint answered 410 Gone.")
    paths = urls(endpoint, dead_delivery)

    assert "The endpoint answered 410 Gone." in ada_client.get(paths["detail"]).content.decode()
    assert ada_client.post(paths["replay"]).status_code == 302
    dead_delivery.refresh_from_db()
    assert dead_delivery.status == WorkStatus.FAILED  # not replayed while disabled

    ada_client.post(paths["enable"])
    endpoint.refresh_from_db()
    assert (endpoint.is_enabled, endpoint.disabled_reason) == (True, "")


def test_deleting_an_endpoint_asks_first_then_deletes_it_with_its_deliveries(
    ada_client: Client, endpoint, dead_delivery
):
    paths = urls(endpoint, dead_delivery)
    assert ada_client.get(paths["delete"]).status_code == 200
    assert WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()

    response = ada_client.post(paths["delete"])

    assert response["Location"] == LIST
    assert not WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()
    assert not Delivery.objects.filter(pk=dead_delivery.pk).exists()


def shown(value: datetime.datetime, language: str) -> str:
    """A time as the page shows it ({{ value }} in the page's language)."""
    with translation.override(language):
        return str(formats.localize(timezone.localtime(value)))


def delivery_cells(html: str, delivery: Delivery) -> tuple[str, str]:
    """The "Next attempt" and "Finished at" cells of the delivery's row."""
    row = html[html.index(delivery.message_id) :]
    next_attempt = re.search(r'<td class="next-attempt">(.*?)</td>', row)
    finished_at = re.search(r'<td class="finished-at">(.*?)</td>', row)
    assert next_attempt and finished_at
    return next_attempt.group(1), finished_at.group(1)


@pytest.mark.parametrize("language", ["en", "ja"])
def test_only_a_pending_delivery_shows_a_next_attempt_and_a_finished_one_its_finish_time(
    ada_client: Client, endpoint, language: str
):
    now = timezone.now().replace(microsecond=0)
    done_at, failed_at = now - datetime.timedelta(hours=1), now - datetime.timedelta(hours=3)
    pending = Delivery.objects.create(
        endpoint=endpoint,
        event_type="response.completed",
        payload={},
        attempts=1,
        next_attempt_at=now + datetime.timedelta(minutes=5),
        last_error="HTTP 404",
    )
    done = Delivery.objects.create(
        endpoint=endpoint,
        event_type="response.completed",
        payload={},
        status=WorkStatus.DONE,
        attempts=2,
        next_attempt_at=now - datetime.timedelta(hours=2),
        finished_at=done_at,
    )
    failed = Delivery.objects.create(
        endpoint=endpoint,
        event_type="response.completed",
        payload={},
        status=WorkStatus.FAILED,
        attempts=26,
        next_attempt_at=now - datetime.timedelta(hours=4),
        finished_at=failed_at,
    )
    detail = reverse("survey:survey_webhooks:endpoint", args=[endpoint.pk])

    html = ada_client.get(detail, HTTP_ACCEPT_LANGUAGE=language).content.decode()

    assert delivery_cells(html, pending) == (shown(pending.next_attempt_at, language), "—")
    assert delivery_cells(html, done) == ("—", shown(done_at, language))
    assert delivery_cells(html, failed) == ("—", shown(failed_at, language))
    assert ("Finished at" if language == "en" else "終了日時") in html


def test_webhooks_page_is_in_japanese_for_japanese_users(ada_client: Client, endpoint):
    response = ada_client.get(LIST, HTTP_ACCEPT_LANGUAGE="ja")
    assert "エンドポイントを追加" in response.content.decode()


def make_deliveries(endpoint: WebhookEndpoint, count: int, **fields: Any) -> list[Delivery]:
    """`count` deliveries one minute apart, returned newest first (the page's order)."""
    start = timezone.now() - datetime.timedelta(days=1)
    rows = Delivery.objects.bulk_create(
        Delivery(
            endpoint=endpoint,
            event_type="response.completed",
            payload={},
            created_at=start + datetime.timedelta(minutes=minute),
            **fields,
        )
        for minute in range(count)
    )
    return rows[::-1]


def link(html: str, rel: str) -> str | None:
    found = re.search(rf'<a href="\?([^"]*)" rel="{rel}">', html)
    return found.group(1).replace("&amp;", "&") if found else None


def test_deliveries_are_paged_newest_first_both_ways(ada_client: Client, endpoint):
    deliveries = make_deliveries(endpoint, 120)
    detail = reverse("survey:survey_webhooks:endpoint", args=[endpoint.pk])

    first = ada_client.get(detail)
    second = ada_client.get(f"{detail}?{link(first.content.decode(), 'next')}")
    third = ada_client.get(f"{detail}?{link(second.content.decode(), 'next')}")
    back = ada_client.get(f"{detail}?{link(third.content.decode(), 'prev')}")
    newest = ada_client.get(f"{detail}?{link(back.content.decode(), 'prev')}")

    assert list(first.context["deliveries"]) == deliveries[:50]
    assert link(first.content.decode(), "prev") is None
    assert '<span class="disabled">Newer</span>' in first.content.decode()
    assert list(second.context["deliveries"]) == deliveries[50:100]
    assert list(third.context["deliveries"]) == deliveries[100:]
    assert link(third.content.decode(), "next") is None
    assert list(back.context["deliveries"]) == deliveries[50:100]
    assert list(newest.context["deliveries"]) == deliveries[:50]
    assert link(newest.content.decode(), "prev") is None


def test_deliveries_of_one_moment_are_neither_skipped_nor_repeated(ada_client: Client, endpoint):
    moment = timezone.now()
    Delivery.objects.bulk_create(
        Delivery(endpoint=endpoint, event_type="response.completed", payload={}, created_at=moment)
        for _ in range(60)
    )
    detail = reverse("survey:survey_webhooks:endpoint", args=[endpoint.pk])

    first = ada_client.get(detail)
    second = ada_client.get(f"{detail}?{link(first.content.decode(), 'next')}")

    shown = [d.pk for d in first.context["deliveries"]] + [
        d.pk for d in second.context["deliveries"]
    ]
    assert sorted(shown) == sorted(Delivery.objects.values_list("pk", flat=True))
    assert len(shown) == 60


def test_paging_keeps_the_status_filter(ada_client: Client, endpoint):
    failed = make_deliveries(endpoint, 55, status=WorkStatus.FAILED)
    make_deliveries(endpoint, 30, status=WorkStatus.DONE)
    detail = reverse("survey:survey_webhooks:endpoint", args=[endpoint.pk])

    first = ada_client.get(detail, {"status": "failed"})
    older = link(first.content.decode(), "next")
    second = ada_client.get(f"{detail}?{older}")

    assert older is not None and older.startswith("status=failed&before=")
    assert list(first.context["deliveries"]) == failed[:50]
    assert list(second.context["deliveries"]) == failed[50:]
    assert second.context["status"] == "failed"
    assert 'value="failed" selected' in second.content.decode()
    assert (link(second.content.decode(), "prev") or "").startswith("status=failed&after=")


def test_a_cursor_that_is_not_ours_shows_the_newest_deliveries(ada_client: Client, endpoint):
    deliveries = make_deliveries(endpoint, 51)
    detail = reverse("survey:survey_webhooks:endpoint", args=[endpoint.pk])

    huge_key = cursors.encode_cursor(timezone.now(), "9" * 40)
    for query in (
        {"before": "garbage"},
        {"after": "%%%"},
        {"before": huge_key},
        {"after": huge_key},
        {"status": "nonsense"},
    ):
        response = ada_client.get(detail, query)

        assert response.status_code == 200
        assert list(response.context["deliveries"]) == deliveries[:50]


def test_one_page_of_deliveries_has_no_pager(ada_client: Client, endpoint):
    make_deliveries(endpoint, 50)
    html = ada_client.get(reverse("survey:survey_webhooks:endpoint", args=[endpoint.pk])).content

    assert b'class="pagination"' not in html
