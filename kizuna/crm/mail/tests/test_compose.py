"""Composing from a record or a list selection, and the batch progress page."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from kizuna.crm.mail import extensions
from kizuna.crm.mail.models import EmailTemplate, OutgoingMessage, SendBatch
from kizuna.crm.mail.tests.conftest import queue_text_email
from kizuna.crm.models import Activity, ActivityKind, Contact, Lead
from kizuna.work import leases


def compose(module: str, *records) -> str:
    ids = ",".join(str(record.pk) for record in records)
    return reverse("crm_mail:compose") + f"?module={module}&ids={ids}"


def test_compose_from_a_template_prefills_subject_and_body(ada_client, organization, contact):
    template = EmailTemplate.objects.create(
        organization=organization,
        module="contacts",
        name="Thanks",
        subject="Thanks {{ contact.given_name }}",
        body_html="<p>Thank you</p>",
    )
    page = ada_client.get(compose("contacts", contact) + f"&template={template.pk}")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'value="Thanks {{ contact.given_name }}"' in html
    assert "&lt;p&gt;Thank you&lt;/p&gt;" in html
    assert "Grace Hopper" in html
    assert "Send to 1 recipient" in html
    assert f'<input type="hidden" name="template" value="{template.pk}"' in html


def test_a_member_sends_to_one_contact_and_sees_the_queued_email(bob, bob_client, contact):
    response = bob_client.post(
        reverse("crm_mail:compose"),
        {
            "module": "contacts",
            "ids": str(contact.pk),
            "subject": "Hi {{ contact.company }}",
            "body_text": "Hello",
        },
    )
    batch = SendBatch.objects.get()
    assert response["Location"] == reverse("crm_mail:batch", args=[batch.pk])
    assert (batch.sender, batch.module, batch.total) == (bob, "contacts", 1)
    message = OutgoingMessage.objects.get()
    assert (message.contact, message.to_address, message.subject) == (
        contact,
        "grace@example.com",
        "Hi Navy",
    )
    assert Activity.objects.get(contact=contact).kind == ActivityKind.EMAIL_QUEUED


def test_the_batch_page_shows_progress_and_htmx_polls_it(ada, ada_client, organization, lead):
    ada_client.post(
        reverse("crm_mail:compose"),
        {"module": "leads", "ids": str(lead.pk), "subject": "S", "body_text": "B"},
    )
    batch = SendBatch.objects.get()
    url = reverse("crm_mail:batch", args=[batch.pk])
    html = ada_client.get(url).content.decode()
    assert f'hx-get="{url}" hx-trigger="every 1s"' in html
    assert '<progress class="mail-progress" max="100" value="0">' in html
    assert '<dd data-count="waiting">1</dd>' in html

    from django.test import override_settings

    with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
        leases.run_due_work(worker_id="test")
    part = ada_client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert part.lstrip().startswith('<div id="batch-progress">')
    assert "hx-trigger" not in part  # finished: polling stops
    assert '<progress class="mail-progress" max="100" value="100">' in part
    assert '<dd data-count="sent">1</dd>' in part
    assert '<span class="badge ok">Sent</span>' in part  # the recipients table is refreshed too
    assert "<h1>" not in part


def test_the_batch_page_of_an_email_written_without_a_template_says_so(ada_client, lead):
    """Written from blank, or a survey's short default email: "(no template)", not a claim
    about what the email was."""
    ada_client.post(
        reverse("crm_mail:compose"),
        {"module": "leads", "ids": str(lead.pk), "subject": "S", "body_text": "B"},
    )
    url = reverse("crm_mail:batch", args=[SendBatch.objects.get().pk])

    english = ada_client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    ada_client.cookies["kizuna_language"] = "ja"
    japanese = ada_client.get(url).content.decode()

    assert "<dd>(no template)</dd>" in english
    assert "<dd>(テンプレートなし)</dd>" in japanese


def test_a_placeholder_error_of_an_extension_queues_nothing(ada_client, lead):
    def refuse(context, key):
        raise extensions.PlaceholderError("The Survey service is unreachable.")

    extensions.register_placeholder_namespace("survey", resolve=refuse)
    try:
        response = ada_client.post(
            reverse("crm_mail:compose"),
            {
                "module": "leads",
                "ids": str(lead.pk),
                "subject": "S",
                "body_text": "Answer: {{ survey.x1 }}",
            },
        )
    finally:
        extensions.unregister("survey")
    assert response.status_code == 200
    assert "The Survey service is unreachable." in response.content.decode()
    assert "Answer: {{ survey.x1 }}" in response.content.decode()
    assert (
        SendBatch.objects.count()
        == OutgoingMessage.objects.count()
        == Activity.objects.count()
        == 0
    )


def test_the_record_page_links_to_compose(ada_client, lead):
    html = ada_client.get(reverse("crm:lead-detail", args=[lead.pk])).content.decode()
    assert f'href="{reverse("crm_mail:compose")}?module=leads&amp;ids={lead.pk}"' in html


def _many_leads(organization, count: int) -> list[Lead]:
    Lead.objects.bulk_create(
        Lead(organization=organization, family_name=f"L{i:04}", email=f"l{i}@x.test")
        for i in range(count)
    )
    return list(Lead.objects.filter(organization=organization).order_by("pk"))


def _selection(ids, **extra) -> dict:
    """What the list's bulk form sends when its "Send email" button is clicked."""
    return {"module": "leads", "bulk_action": "send_email", "ids": [str(pk) for pk in ids], **extra}


def test_the_list_posts_a_whole_page_selection_to_compose(ada_client, organization):
    _many_leads(organization, 51)
    page = ada_client.get(reverse("crm:lead-list")).content.decode()
    button = (
        f'<button type="submit" formaction="{reverse("crm_mail:compose")}" '
        'name="bulk_action" value="send_email" class="button small">Send email</button>'
    )
    assert button in page
    # A list page selects at most its own rows (50); "select all" ticks them all.
    on_page = re.findall(r'<input type="checkbox" name="ids" value="(\d+)"', page)
    assert len(on_page) == 50
    response = ada_client.post(
        reverse("crm_mail:compose"), _selection(on_page, owner="", status="")
    )
    assert response.status_code == 200
    assert "Send to 50 recipients" in response.content.decode()
    assert response.context["ids"] == ",".join(on_page)
    assert SendBatch.objects.count() == 0


def test_600_selected_records_are_posted_and_sent(ada, ada_client, organization):
    leads = _many_leads(organization, 600)
    ids = [lead.pk for lead in leads]
    page = ada_client.post(reverse("crm_mail:compose"), _selection(ids))
    assert page.status_code == 200
    assert "Send to 600 recipients" in page.content.decode()
    # The first hundred are listed, the others counted.
    assert len(page.context["recipients"]) == 100
    assert 'data-more-recipients="500">And 500 more recipients.' in page.content.decode()

    response = ada_client.post(
        reverse("crm_mail:compose"),
        {"module": "leads", "ids": page.context["ids"], "subject": "S", "body_text": "B"},
    )
    batch = SendBatch.objects.get()
    assert response["Location"] == reverse("crm_mail:batch", args=[batch.pk])
    assert batch.total == 600
    assert sorted(OutgoingMessage.objects.values_list("lead_id", flat=True)) == ids


def test_choosing_a_template_keeps_a_600_record_selection(ada_client, organization):
    leads = _many_leads(organization, 600)
    template = EmailTemplate.objects.create(
        organization=organization, module="leads", name="News", subject="News", body_html="<p>N</p>"
    )
    response = ada_client.post(
        reverse("crm_mail:compose"),
        {
            "module": "leads",
            "ids": ",".join(str(lead.pk) for lead in leads),
            "template": str(template.pk),
            "choose_template": "1",
        },
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'value="News"' in html
    assert "Send to 600 recipients" in html
    assert SendBatch.objects.count() == 0


def test_an_empty_selection_goes_back_to_the_list_with_an_error(ada_client, lead):
    response = ada_client.post(reverse("crm_mail:compose"), _selection([]))
    assert response.status_code == 302
    assert response["Location"] == reverse("crm:lead-list")
    assert "Select at least one record." in ada_client.get(response["Location"]).content.decode()


def test_more_than_10000_records_are_refused_with_a_clear_error(ada_client, organization):
    # One comma-separated field: Django refuses more than 1,000 form fields anyway.
    ids = ",".join(str(lead.pk) for lead in _many_leads(organization, 10_001))
    response = ada_client.post(
        reverse("crm_mail:compose"), _selection([ids]), HTTP_ACCEPT_LANGUAGE="ja"
    )
    assert response.status_code == 302
    page = ada_client.get(response["Location"], HTTP_ACCEPT_LANGUAGE="ja").content.decode()
    assert "1通のメールで選択できるのは10000件までです。" in page
    assert SendBatch.objects.count() == 0


def test_all_records_matching_the_list_filters_open_the_composer(ada_client, organization):
    leads = _many_leads(organization, 120)
    listing = ada_client.get(reverse("crm:lead-list"), {"q": "L00"}).content.decode()
    compose = reverse("crm_mail:compose") + "?module=leads&amp;match=q%3DL00"
    assert f'href="{compose}">Send email: all 100 matching records</a>' in listing
    page = ada_client.get(reverse("crm_mail:compose"), {"module": "leads", "match": "q=L00"})
    assert page.context["ids"] == ",".join(str(lead.pk) for lead in leads[:100])
    assert "Send to 100 recipients" in page.content.decode()
    assert SendBatch.objects.count() == 0


@pytest.mark.parametrize("persona,status", [("bob", 200), ("charlie", 404), ("anonymous", 302)])
def test_a_posted_selection_follows_the_organization(
    lead, persona, status, bob_client, charlie_client
):
    client = {"bob": bob_client, "charlie": charlie_client}.get(persona) or Client()
    response = client.post(reverse("crm_mail:compose"), _selection([lead.pk]))
    assert response.status_code == status
    if persona == "anonymous":
        assert response["Location"].startswith(reverse("identity:login"))
    assert SendBatch.objects.count() == 0


def test_records_of_another_organization_cannot_be_emailed(
    ada_client, charlie_client, lead, organization, other_organization
):
    stranger = Contact.objects.create(
        organization=other_organization, family_name="X", email="x@x.test"
    )
    assert ada_client.get(compose("contacts", stranger)).status_code == 404
    assert charlie_client.get(compose("leads", lead)).status_code == 404
    response = charlie_client.post(
        reverse("crm_mail:compose"),
        {"module": "leads", "ids": str(lead.pk), "subject": "S", "body_text": "B"},
    )
    assert response.status_code == 404
    assert SendBatch.objects.count() == 0


@pytest.mark.parametrize("query", ["?module=deals&ids=1", "?module=leads&ids=a"])
def test_bad_compose_parameters_are_404(ada_client, lead, query):
    assert ada_client.get(reverse("crm_mail:compose") + query).status_code == 404


@pytest.mark.usefixtures("ada_membership")
def test_batches_of_another_organization_are_404(ada, charlie_client, organization, lead):

    batch = queue_text_email(organization, ada, [lead], subject="Secret", body_text="B")
    assert charlie_client.get(reverse("crm_mail:batch", args=[batch.pk])).status_code == 404
    assert "Secret" not in charlie_client.get(reverse("crm_mail:batches")).content.decode()


@pytest.mark.usefixtures("ada_membership")
def test_standard_members_see_the_organizations_sent_emails(ada, bob_client, organization, lead):

    batch = queue_text_email(organization, ada, [lead], subject="Launch news", body_text="B")
    assert "Launch news" in bob_client.get(reverse("crm_mail:batches")).content.decode()
    page = bob_client.get(reverse("crm_mail:batch", args=[batch.pk]))
    assert page.status_code == 200
    assert "taro@example.jp" in page.content.decode()


def test_sent_emails_are_listed_25_to_a_page(ada, ada_client, organization, lead):
    for number in range(26):
        queue_text_email(organization, ada, [lead], subject=f"News {number}")
    first = ada_client.get(reverse("crm_mail:batches")).content.decode()
    assert "Page 1 of 2" in first
    assert 'href="?page=2"' in first
    second = ada_client.get(reverse("crm_mail:batches") + "?page=2").content.decode()
    assert "News 0" in second
    assert "Page 2 of 2" in second


def test_sent_emails_show_placeholders_as_field_names_in_the_readers_language(
    ada, ada_client, bob, bob_client, organization, lead
):
    batch = queue_text_email(
        organization,
        ada,
        [lead],
        subject="{{ lead.given_name }}, join our product webinar ({{sender.name}})",
    )
    batch_url = reverse("crm_mail:batch", args=[batch.pk])
    english = "[Given name], join our product webinar ([Sender name])"
    listing = ada_client.get(reverse("crm_mail:batches")).content.decode()
    assert f"<td>{english}</td>" in listing
    assert "{{" not in listing
    page = ada_client.get(batch_url).content.decode()
    assert f"<h1>{english}</h1>" in page
    assert f"<title>{english}" in page

    bob.language = "ja"
    bob.save(update_fields=["language"])
    japanese = "[名], join our product webinar ([送信者の名前])"
    assert f"<td>{japanese}</td>" in bob_client.get(reverse("crm_mail:batches")).content.decode()
    assert f"<h1>{japanese}</h1>" in bob_client.get(batch_url).content.decode()
