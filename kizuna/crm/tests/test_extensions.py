"""Extension slots: what other parts of the CRM add to the core pages."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils.html import format_html

from kizuna.crm import extensions
from kizuna.crm.models import Contact, Lead

pytestmark = pytest.mark.django_db


@pytest.fixture
def empty_registries(monkeypatch: Any) -> None:
    for name in ("_detail_actions", "_detail_panels", "_nav_items"):
        monkeypatch.setattr(extensions, name, [])


def test_detail_actions_and_panels_render_for_the_record(
    empty_registries: None, ada_client: Client, lead: Lead, contact: Contact
) -> None:
    seen: list[Any] = []

    def action(request: Any, record: Lead | Contact) -> Any:
        seen.append(record)
        return format_html('<a class="button" href="/x/{}">Do it</a>', record.pk)

    def panel(request: Any, record: Lead | Contact) -> Any:
        # An integration that is switched off answers None: nothing shows.
        if isinstance(record, Contact):
            return None
        return format_html("<section>Panel for {}</section>", record.family_name)

    extensions.register_detail_action(action)
    extensions.register_detail_panel(panel)
    lead_page = ada_client.get(reverse("crm:lead-detail", args=[lead.pk])).content.decode()
    assert f'<a class="button" href="/x/{lead.pk}">Do it</a>' in lead_page
    assert "<section>Panel for 佐藤</section>" in lead_page
    contact_page = ada_client.get(reverse("crm:contact-detail", args=[contact.pk])).content.decode()
    assert f'href="/x/{contact.pk}"' in contact_page
    assert "Panel for" not in contact_page
    assert seen == [lead, contact]


def test_nav_items_join_the_crm_subnav(empty_registries: None, bob_client: Client) -> None:
    extensions.register_nav_item(lambda request: extensions.NavItem(label="Reports", url="/r/"))
    extensions.register_nav_item(lambda request: None)
    content = bob_client.get(reverse("crm:home")).content.decode()
    assert '<a href="/r/">Reports</a>' in content


def test_extension_html_is_never_shown_to_charlie_for_other_records(
    empty_registries: None, charlie_client: Client, lead: Lead
) -> None:
    calls: list[Any] = []
    extensions.register_detail_panel(lambda request, record: calls.append(record))
    assert charlie_client.get(reverse("crm:lead-detail", args=[lead.pk])).status_code == 404
    assert calls == []
