"""Every CRM core page in Japanese: a complete catalog, and pages that use it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from kizuna.crm.models import Contact, Lead

CATALOG = Path(__file__).resolve().parents[1] / "locale" / "ja" / "LC_MESSAGES" / "django.po"


def test_the_japanese_catalog_is_complete_and_not_fuzzy() -> None:
    text = CATALOG.read_text(encoding="utf-8")
    entries = text.split("\n\n")[1:]
    empty = [e for e in entries if re.search(r'^msgstr(\[0\])? ""$', e, re.M) and '\n"' not in e]
    assert empty == []
    assert "#, fuzzy" not in text


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name,needs_record,expected",
    [
        ("crm:home", None, "ステータス別のリード"),
        ("crm:lead-list", None, "リードを作成"),
        ("crm:contact-list", None, "連絡先を作成"),
        ("crm:lead-create", None, "保存して次を作成"),
        ("crm:lead-detail", "lead", "連絡先に変換"),
        ("crm:contact-edit", "contact", "部署"),
        ("crm:lead-delete", "lead", "元に戻すことはできません"),
        ("crm:lead-convert", "lead", "連絡先に変換しますか"),
        ("crm:settings", None, "別の組織を作成"),
        ("crm:settings-members", None, "メンバーを招待"),
        ("crm:settings-extensions", None, "<h2>拡張機能とAPI</h2>"),
    ],
)
def test_pages_speak_japanese(
    ada_client: Client,
    lead: Lead,
    contact: Contact,
    name: str,
    needs_record: str | None,
    expected: str,
) -> None:
    args = [{"lead": lead, "contact": contact}[needs_record].pk] if needs_record else []
    response = ada_client.get(reverse(name, args=args), HTTP_ACCEPT_LANGUAGE="ja")
    assert response.status_code == 200
    content = response.content.decode()
    assert expected in content
    assert '<html lang="ja">' in content
