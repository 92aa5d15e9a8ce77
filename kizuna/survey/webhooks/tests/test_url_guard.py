"""Webhook URLs that must never be requested: refused with 422 at the API and a form error
in Settings, never a 500, never stored (issue: malformed hosts once escaped as ValueError,
6to4 addresses of private IPv4 addresses were accepted). The guard runs again at delivery."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from kizuna.survey.models import AccountMember
from kizuna.survey.webhooks import services
from kizuna.survey.webhooks.models import WebhookEndpoint
from kizuna.testing.survey_keys import sc_headers
from kizuna.work.leases import WorkStatus, run_due_work

pytestmark = pytest.mark.django_db

API = "/survey/api/v1/webhooks"
LIST = reverse("survey:survey_webhooks:endpoints")
INVALID = "Enter a valid http or https URL."
PRIVATE = (
    "This URL points to a private or local network address, which this deployment does not allow."
)
DJANGO_INVALID = "Enter a valid URL."  # Django's URL field, before Kizuna's guard
# Each URL with the API's field error and the settings form's.
HOSTILE_URLS = [
    ("http://[127.0.0.1]/hook", INVALID, DJANGO_INVALID),
    ("http://[::1/hook", INVALID, DJANGO_INVALID),
    ("http://[169.254.169.254]/latest/meta-data/", INVALID, DJANGO_INVALID),
    ("http://exa mple.com/hook", INVALID, DJANGO_INVALID),
    ("http://x:99999/hook", INVALID, DJANGO_INVALID),
    ("http://[2002:7f00:1::]/hook", PRIVATE, PRIVATE),
    ("http://[2002:a9fe:a9fe::]/latest/meta-data/", PRIVATE, PRIVATE),
    ("http://[64:ff9b::7f00:1]/hook", PRIVATE, PRIVATE),
    ("http://[::ffff:169.254.169.254]/hook", PRIVATE, PRIVATE),
    ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook", PRIVATE, PRIVATE),
    ("http://0x7f.0.0.1/hook", PRIVATE, DJANGO_INVALID),
]


@pytest.mark.parametrize(("url", "message", "form_message"), HOSTILE_URLS)
def test_the_api_refuses_a_hostile_webhook_url_with_422_and_stores_nothing(
    client: Client, ada_member: AccountMember, url: str, message: str, form_message: str
) -> None:
    response = client.post(
        API,
        json.dumps({"url": url, "events": ["response.completed"]}),
        content_type="application/json",
        **sc_headers(ada_member),
    )

    assert response.status_code == 422
    assert response.json() == {
        "error": {
            "code": "invalid",
            "message": "Some values are not valid.",
            "fields": {"url": [message]},
        }
    }
    assert WebhookEndpoint.objects.count() == 0


@pytest.mark.parametrize(("url", "message", "form_message"), HOSTILE_URLS)
def test_the_settings_page_refuses_a_hostile_webhook_url_with_a_form_error(
    client: Client, ada_member: AccountMember, url: str, message: str, form_message: str
) -> None:
    client.force_login(ada_member.user)

    response = client.post(LIST, {"url": url, "events": ["response.completed"]})

    assert response.status_code == 200
    assert response.context["form"].errors["url"] == [form_message]
    assert WebhookEndpoint.objects.count() == 0


@pytest.mark.parametrize(
    ("stored_url", "error"),
    [
        ("http://[127.0.0.1]/hook", "This is not a valid http or https URL."),
        ("http://[2002:7f00:1::]/hook", "resolves to a private or reserved address"),
    ],
)
def test_a_hostile_url_stored_before_this_guard_is_refused_at_delivery_time(
    ada_member: AccountMember, stored_url: str, error: str
) -> None:
    endpoint, _secret = services.create_endpoint(
        account=ada_member.account,
        url="https://93.184.215.14/hook",
        events=["response.completed"],
        by=None,
    )
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=stored_url)
    [delivery] = services.publish_event(
        account=ada_member.account, event_type="response.completed", payload={}
    )

    run_due_work(worker_id="test")

    delivery.refresh_from_db()
    [attempt] = delivery.attempts_made.all()
    assert delivery.status == WorkStatus.PENDING
    assert error in delivery.last_error
    assert (attempt.status_code, error in attempt.error) == (None, True)
