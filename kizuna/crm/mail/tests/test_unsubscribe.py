"""The unsubscribe page and RFC 8058 one-click unsubscribe."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from kizuna.crm.mail import services
from kizuna.crm.mail.models import OutgoingMessage
from kizuna.crm.mail.tests.conftest import queue_text_email
from kizuna.crm.models import Activity, ActivityKind


@pytest.mark.usefixtures("ada_membership")
def queued_message(ada, organization, record) -> OutgoingMessage:
    queue_text_email(organization, ada, [record], body_text="B")
    return OutgoingMessage.objects.get()


@pytest.mark.usefixtures("ada_membership")
def test_rfc8058_one_click_post_without_csrf_token_sets_the_opt_out(ada, organization, lead):
    message = queued_message(ada, organization, lead)
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        reverse("crm_mail:unsubscribe", args=[message.unsubscribe_token]),
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    lead.refresh_from_db()
    assert lead.email_opt_out is True
    activity = Activity.objects.get(lead=lead, kind=ActivityKind.UNSUBSCRIBED)
    assert activity.data == {"message": message.pk, "batch": message.batch_id, "one_click": True}


@pytest.mark.usefixtures("ada_membership")
def test_the_page_asks_first_then_unsubscribes_once(ada, organization, lead):
    message = queued_message(ada, organization, lead)
    url = reverse("crm_mail:unsubscribe", args=[message.unsubscribe_token])
    client = Client(enforce_csrf_checks=True)
    page = client.get(url).content.decode()
    assert "Stop emails from Kizuna Demo to taro@example.jp?" in page
    lead.refresh_from_db()
    assert lead.email_opt_out is False

    done = client.post(url).content.decode()
    assert "taro@example.jp will no longer receive emails from Kizuna Demo." in done
    client.post(url)
    lead.refresh_from_db()
    assert lead.email_opt_out is True
    assert Activity.objects.filter(lead=lead, kind=ActivityKind.UNSUBSCRIBED).count() == 1


@pytest.mark.usefixtures("ada_membership")
def test_the_page_follows_the_browser_language(ada, organization, lead):
    message = queued_message(ada, organization, lead)
    url = reverse("crm_mail:unsubscribe", args=[message.unsubscribe_token])
    page = Client().get(url, HTTP_ACCEPT_LANGUAGE="ja").content.decode()
    assert '<html lang="ja">' in page
    assert "配信停止" in page


@pytest.mark.usefixtures("ada_membership")
def test_an_unknown_token_is_404_and_changes_nothing(ada, organization, lead):
    queued_message(ada, organization, lead)
    response = Client().post(reverse("crm_mail:unsubscribe", args=["not-a-token"]))
    assert response.status_code == 404
    lead.refresh_from_db()
    assert lead.email_opt_out is False


@pytest.mark.usefixtures("ada_membership")
def test_an_unsubscribed_record_is_skipped_next_time(ada, organization, lead):
    message = queued_message(ada, organization, lead)
    services.unsubscribe(message=message, one_click=False)
    lead.refresh_from_db()
    batch = queue_text_email(organization, ada, [lead], subject="Again", body_text="B")
    assert batch.skipped == [{"id": lead.pk, "name": "山田 太郎", "reason": "opted_out"}]
    assert OutgoingMessage.objects.filter(batch=batch).count() == 0
