"""The lead and contact lists: search, filters, sorting, keyset pages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from kizuna.crm import listing
from kizuna.crm.models import Lead, LeadSource, LeadStatus, Organization
from kizuna.crm.tests.conftest import make_contact, make_lead
from kizuna.testing.races import require_postgresql

pytestmark = pytest.mark.django_db


def _names(response: Any) -> list[str]:
    return [row.family_name for row in response.context["page"].rows]


@pytest.fixture
def people(organization: Organization, ada_membership: Any, bob_membership: Any) -> dict[str, Lead]:
    rows = [
        ("佐藤", "花子", "さくら食品", "hanako@sakura.example", ada_membership.user, "web", "new"),
        (
            "鈴木",
            "一郎",
            "Suzuki Motors",
            "ichiro@suzuki.example",
            bob_membership.user,
            "event",
            "contacted",
        ),
        ("Lovelace", "Ada", "Analytical Engines", "ada@engines.example", None, "", "qualified"),
        (
            "Hopper",
            "Grace",
            "Navy",
            "grace@navy.example",
            bob_membership.user,
            "web",
            "unqualified",
        ),
    ]
    leads = {}
    for family, given, company, email, owner, source, status in rows:
        leads[family] = make_lead(
            organization,
            ada_membership.user,
            family_name=family,
            given_name=given,
            company=company,
            email=email,
            owner=owner,
            lead_source=source,
            status=status,
        )
    return leads


@pytest.mark.parametrize(
    "query,expected",
    [
        ("佐藤", ["佐藤"]),
        ("花子 佐藤", ["佐藤"]),
        ("suzuki", ["鈴木"]),
        ("ENGINES", ["Lovelace"]),
        ("grace@navy", ["Hopper"]),
        ("ada lovelace", ["Lovelace"]),
        ("さくら", ["佐藤"]),
        ("nobody", []),
        # One or two characters match the start of a name or company only.
        ("ho", ["Hopper"]),
        ("藤", []),
        ("su", ["鈴木"]),
        ("さく", ["佐藤"]),
        ("100%", []),
        # ... the start of any word: of a company name, of an email.
        ("mo", ["鈴木"]),
        ("gr na", ["Hopper"]),
        ("an", ["Lovelace"]),
    ],
)
def test_it_searches_name_company_and_email(
    ada_client: Client, people: dict[str, Lead], query: str, expected: list[str]
) -> None:
    response = ada_client.get(reverse("crm:lead-list"), {"q": query})
    assert response.status_code == 200
    assert _names(response) == expected


def test_it_filters_by_status_owner_and_source(
    ada_client: Client, bob_membership: Any, people: dict[str, Lead]
) -> None:
    url = reverse("crm:lead-list")
    assert _names(ada_client.get(url, {"status": "contacted"})) == ["鈴木"]
    assert _names(ada_client.get(url, {"owner": bob_membership.user.pk, "sort": "name"})) == [
        "Hopper",
        "鈴木",
    ]
    assert _names(ada_client.get(url, {"owner": "me"})) == ["佐藤"]
    assert _names(ada_client.get(url, {"owner": "none"})) == ["Lovelace"]
    assert _names(ada_client.get(url, {"source": "web", "sort": "name"})) == ["Hopper", "佐藤"]
    assert _names(ada_client.get(url, {"source": "none"})) == ["Lovelace"]
    assert _names(ada_client.get(url, {"source": "web", "owner": bob_membership.user.pk})) == [
        "Hopper"
    ]


def test_it_ignores_invalid_filters_instead_of_failing(
    ada_client: Client, people: dict[str, Lead]
) -> None:
    response = ada_client.get(
        reverse("crm:lead-list"),
        {"status": "bogus", "owner": "999999", "sort": "drop table", "after": "!!!"},
    )
    assert response.status_code == 200
    assert len(_names(response)) == 4


def test_it_sorts_by_name_and_company(ada_client: Client, people: dict[str, Lead]) -> None:
    url = reverse("crm:lead-list")
    assert _names(ada_client.get(url, {"sort": "name"})) == ["Hopper", "Lovelace", "佐藤", "鈴木"]
    assert _names(ada_client.get(url, {"sort": "-name"})) == ["鈴木", "佐藤", "Lovelace", "Hopper"]
    assert _names(ada_client.get(url, {"sort": "company"})) == [
        "Lovelace",
        "Hopper",
        "鈴木",
        "佐藤",
    ]
    assert _names(ada_client.get(url)) == ["Hopper", "Lovelace", "鈴木", "佐藤"]
    assert _names(ada_client.get(url, {"sort": "oldest"})) == ["佐藤", "鈴木", "Lovelace", "Hopper"]


@pytest.mark.parametrize("sort", list(listing.SORTS))
def test_keyset_pages_cover_every_row_once_even_with_ties(
    ada_client: Client, organization: Organization, ada_membership: Any, sort: str, monkeypatch: Any
) -> None:
    monkeypatch.setattr(listing, "PAGE_SIZE", 3)
    same_time = timezone.now() - timedelta(days=1)
    expected = set()
    for index in range(8):
        # Same name, company and creation time for several rows: only the id tells them apart.
        contact = make_contact(
            organization,
            ada_membership.user,
            family_name=f"Kato{index // 3}",
            company=f"C{index % 2}",
        )
        contact.created_at = same_time
        contact.save(update_fields=["created_at"])
        expected.add(contact.pk)

    url = reverse("crm:contact-list")
    seen: list[int] = []
    pages: list[list[int]] = []
    response = ada_client.get(url, {"sort": sort})
    while True:
        ids = [row.pk for row in response.context["page"].rows]
        pages.append(ids)
        seen += ids
        next_url = response.context["next_url"]
        if not next_url:
            break
        response = ada_client.get(url + next_url)
    assert sorted(seen) == sorted(expected)
    assert len(seen) == len(expected)
    assert [len(page) for page in pages] == [3, 3, 2]

    # Going back from the last page shows the page before it, in the same order.
    previous = ada_client.get(url + response.context["previous_url"])
    assert [row.pk for row in previous.context["page"].rows] == pages[1]


def test_the_count_stops_at_the_limit(
    ada_client: Client, organization: Organization, ada_membership: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(listing, "COUNT_LIMIT", 2)
    monkeypatch.setattr(listing, "PAGE_SIZE", 1)
    for index in range(3):
        make_lead(organization, ada_membership.user, family_name=f"N{index}")
    response = ada_client.get(reverse("crm:lead-list"))
    assert (response.context["page"].count, response.context["page"].count_is_capped) == (2, True)
    assert "More than 2 records" in response.content.decode()


def test_p4_with_search_words_the_count_stops_at_the_lower_search_limit(
    ada_client: Client, organization: Organization, ada_membership: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(listing, "COUNT_LIMIT", 3)
    monkeypatch.setattr(listing, "SEARCH_COUNT_LIMIT", 2)
    monkeypatch.setattr(listing, "PAGE_SIZE", 1)
    for index in range(3):
        make_lead(organization, ada_membership.user, family_name=f"Nakamura{index}")
    url = reverse("crm:lead-list")
    searched = ada_client.get(url, {"q": "naka"}).context["page"]
    assert (searched.count, searched.count_is_capped) == (2, True)
    listed = ada_client.get(url, {"status": "new"}).context["page"]
    assert (listed.count, listed.count_is_capped) == (3, False)


def test_p4_a_first_page_with_room_to_spare_is_its_own_count(
    ada_client: Client, people: dict[str, Lead]
) -> None:
    with CaptureQueriesContext(connection) as queries:
        response = ada_client.get(reverse("crm:lead-list"), {"source": "web"})
    assert (response.context["page"].count, response.context["page"].count_is_capped) == (2, False)
    assert "2 records" in response.content.decode()
    assert not [query for query in queries.captured_queries if "COUNT(" in query["sql"]]


def test_p4_a_list_page_makes_the_same_queries_whatever_it_shows(
    ada_client: Client, organization: Organization, ada_membership: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(listing, "PAGE_SIZE", 3)
    for index in range(8):
        make_lead(organization, ada_membership.user, family_name=f"Kato{index}", status="new")
    url = reverse("crm:lead-list")
    counted = []
    for params in ({}, {"q": "kato", "status": "new", "owner": "none", "source": "none"}):
        first = ada_client.get(url, params)
        with CaptureQueriesContext(connection) as queries:
            ada_client.get(url + first.context["next_url"])
        counted.append(len(queries))
        with CaptureQueriesContext(connection) as queries:
            ada_client.get(url, params)
        counted.append(len(queries))
    assert len(set(counted)) == 1, counted


def test_a_cursor_is_plain_row_values(organization: Organization, ada_membership: Any) -> None:
    sort = listing.SORTS["recent"]
    at = timezone.now()
    cursor = listing.encode_cursor([at, 42])
    assert listing.decode_cursor(cursor, sort) == [at, 42]
    assert listing.decode_cursor(cursor, listing.SORTS["name"]) is None
    assert listing.decode_cursor(listing.encode_cursor(["2020-01-01", 1]), sort) is None
    assert listing.decode_cursor("not base64 at all", sort) is None


def test_the_empty_list_invites_to_add_a_record(bob_client: Client) -> None:
    response = bob_client.get(reverse("crm:lead-list"))
    assert "No leads yet." in response.content.decode()
    assert response.context["page"].rows == []


def test_a_status_filter_on_contacts_is_ignored(
    ada_client: Client, organization: Organization, ada_membership: Any
) -> None:
    make_contact(organization, ada_membership.user, family_name="Abe")
    response = ada_client.get(reverse("crm:contact-list"), {"status": LeadStatus.NEW})
    assert _names(response) == ["Abe"]


def test_column_headers_sort_and_say_how(ada_client: Client, people: dict[str, Lead]) -> None:
    response = ada_client.get(reverse("crm:lead-list"), {"q": "a", "sort": "name"})
    sorts = response.context["column_sorts"]
    assert sorts["name"] == {"url": "?q=a&sort=-name", "state": "ascending"}
    assert sorts["company"] == {"url": "?q=a&sort=company", "state": "none"}
    assert sorts["created"] == {"url": "?q=a&sort=recent", "state": "none"}
    content = response.content.decode()
    assert (
        '<th scope="col" aria-sort="ascending"><a class="sort-link" href="?q=a&amp;sort=-name">'
        in content
    )
    default = ada_client.get(reverse("crm:lead-list")).context["column_sorts"]
    assert default["created"] == {"url": "?sort=oldest", "state": "descending"}


def test_the_export_link_carries_the_lists_filters_and_sort(
    ada_client: Client, people: dict[str, Lead]
) -> None:
    url = reverse("crm:lead-list")
    params = {"q": "example", "source": "web", "sort": "-name"}
    html = ada_client.get(url, params).content.decode()
    export = reverse("crm_imports:export", args=["leads"])
    link = f'id="record-export" href="{export}?q=example&amp;source=web&amp;sort=-name"'
    assert link in html
    assert f'href="{reverse("crm_imports:start")}?module=leads">Import</a>' in html
    # The file holds what the list shows, in the list's order.
    response: Any = ada_client.get(export, params)
    exported = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = [line.split(",") for line in exported.splitlines()]
    assert [row[1] for row in rows] == ["Family name", "佐藤", "Hopper"]
    # A search made in place (htmx) updates the link with the list.
    fragment = ada_client.get(url, {"status": "contacted"}, headers={"HX-Request": "true"})
    assert f'id="record-export" href="{export}?status=contacted"' in fragment.content.decode()


def test_the_contact_list_links_to_export_and_import_contacts(ada_client: Client) -> None:
    html = ada_client.get(reverse("crm:contact-list")).content.decode()
    assert f'id="record-export" href="{reverse("crm_imports:export", args=["contacts"])}"' in html
    assert f'href="{reverse("crm_imports:start")}?module=contacts">Import</a>' in html


def test_p4_on_postgresql_search_and_filter_counts_are_read_from_the_indexes_of_0006(
    organization: Organization, ada_membership: Any
) -> None:
    require_postgresql("the list indexes of migration 0006 exist on PostgreSQL only")
    make_lead(organization, ada_membership.user, family_name="佐藤", company="Suzuki Motors")
    # Other leads of the organization, none of them new: with one lead alone the index of the
    # organization (the filters checked row by row) cost the same as the covering index, and
    # the planner took either from one run to the next.
    Lead.objects.bulk_create(
        Lead(organization=organization, family_name=f"Lead {n}", status=LeadStatus.CONTACTED)
        for n in range(300)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE crm_lead")
    leads = Lead.objects.of(organization)
    filtered = listing.ListQuery(
        statuses=("new",), owner=str(ada_membership.user.pk), source="web"
    ).filter(leads)
    searched = listing.apply_search(Lead.objects.all(), "佐藤 mo")
    with connection.cursor() as cursor:
        # A handful of rows: make the planner show which index it can use at all.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        assert "Index Only Scan" in filtered.order_by().values("pk")[:10].explain()
        # A trigram (GIN) index is read through a bitmap only.
        cursor.execute("SET LOCAL enable_bitmapscan = on")
        cursor.execute("SET LOCAL enable_indexscan = off")
        assert "Bitmap Index Scan on crm_lead_words_trgm" in searched.explain()


@pytest.mark.parametrize("language", ["en", "ja"])
def test_p4_each_row_shows_its_status_and_source_labels_in_the_users_language(
    ada_client: Client, people: dict[str, Lead], language: str
) -> None:
    response = ada_client.get(
        reverse("crm:lead-list"), {"sort": "name"}, HTTP_ACCEPT_LANGUAGE=language
    )
    with translation.override(language):
        expected = [
            f'<span class="badge status-{status}">{LeadStatus(status).label}</span></td>\n'
            f"        <td>{LeadSource(source).label}</td>"
            for status, source in [
                ("unqualified", "web"),
                ("qualified", ""),
                ("new", "web"),
                ("contacted", "event"),
            ]
        ]
    content = response.content.decode()
    positions = [content.find(cell) for cell in expected]
    assert -1 not in positions, expected
    assert positions == sorted(positions)
