"""The template editor and the progress page in a real browser (static JS under the strict CSP)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from kizuna.crm.mail import extensions
from kizuna.crm.mail.models import EmailTemplate
from kizuna.crm.mail.tests.conftest import queue_text_email
from kizuna.crm.models import Lead
from kizuna.testing.pages import sign_in, watch_for_errors
from kizuna.work import leases

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.usefixtures("ada_membership")
def test_merge_fields_and_extension_buttons_insert_at_the_cursor(
    live_server: Any, page: Any, ada: Any, organization: Any
) -> None:
    extensions.register_editor_button(
        "survey-link",
        label="Insert survey link",
        insertions=lambda context: [extensions.Insertion("NPS", "{{ survey.nps }}")],
    )
    extensions.register_placeholder_namespace("survey", resolve=lambda context, key: key)
    problems = watch_for_errors(page)
    try:
        sign_in(page, live_server, ada)
        page.goto(live_server.url + "/crm/mail/templates/new/?module=leads")
        assert page.locator("[data-editor-toolbar]").is_visible()
        assert not page.locator(".mail-placeholders").is_visible()

        page.fill("#id_name", "Browser template")
        page.fill("#id_subject", "Hello !")
        page.focus("#id_subject")
        page.evaluate("document.getElementById('id_subject').setSelectionRange(6, 6)")
        page.select_option("#merge-field-select", "{{ lead.given_name }}")
        page.click('button[data-insert-from="merge-field-select"]')
        assert page.input_value("#id_subject") == "Hello {{ lead.given_name }}!"

        page.fill("#id_body_html", "<p>Answer: </p>")
        page.focus("#id_body_html")
        page.evaluate("document.getElementById('id_body_html').setSelectionRange(11, 11)")
        page.click('[data-extension="survey-link"] button')
        assert page.input_value("#id_body_html") == "<p>Answer: {{ survey.nps }}</p>"

        page.select_option("#id_module", "contacts")
        hidden = page.evaluate(
            "Array.from(document.querySelectorAll('#merge-field-select option'))"
            ".filter(o => !o.hidden).map(o => o.value)"
        )
        assert "{{ lead.given_name }}" not in hidden
        assert "{{ contact.department }}" in hidden
        assert "{{ sender.name }}" in hidden
        page.select_option("#id_module", "leads")

        page.click("main button.primary")
        page.wait_for_url("**/crm/mail/templates/*/")
        template = EmailTemplate.objects.get()
        assert (template.subject, template.body_html) == (
            "Hello {{ lead.given_name }}!",
            "<p>Answer: {{ survey.nps }}</p>",
        )
    finally:
        extensions.unregister("survey-link")
        extensions.unregister("survey")
    assert problems == []


@pytest.mark.usefixtures("ada_membership")
def test_the_progress_bar_updates_without_reloading(
    live_server: Any, page: Any, ada: Any, organization: Any, lead: Any
) -> None:
    batch = queue_text_email(organization, ada, [lead], body_text="B")
    problems = watch_for_errors(page)
    sign_in(page, live_server, ada)
    page.goto(live_server.url + f"/crm/mail/sent/{batch.pk}/")
    assert page.text_content('[data-count="waiting"]') == "1"
    page.evaluate("window.notReloaded = true")

    with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
        leases.run_due_work(worker_id="test")

    page.wait_for_selector('[data-count="sent"]:text-is("1")', timeout=10_000)
    assert page.text_content('[data-count="waiting"]') == "0"
    assert page.evaluate("window.notReloaded") is True
    assert problems == []


@pytest.mark.usefixtures("ada_membership")
def test_send_email_posts_a_whole_list_page_to_compose(
    live_server: Any, page: Any, ada: Any, organization: Any
) -> None:
    Lead.objects.bulk_create(
        Lead(organization=organization, family_name=f"B{i:02}", email=f"b{i}@x.test")
        for i in range(55)
    )
    problems = watch_for_errors(page)
    sign_in(page, live_server, ada)
    page.goto(live_server.url + "/crm/leads/")
    page.locator("#select-all").check()
    assert page.locator('input[name="ids"]:checked').count() == 50
    page.click('button[name="bulk_action"][value="send_email"]')
    page.wait_for_url("**/crm/mail/compose/")
    assert "Send to 50 recipients" in page.content()
    assert page.locator("span.badge.ok", has_text="Will receive it").count() == 50
    assert problems == []
