"""The lead list in a real browser: "select all" (static JS, strict CSP) and a bulk action."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from kizuna.crm.models import Lead, Organization
from kizuna.crm.tests.conftest import make_lead
from kizuna.testing.pages import sign_in, watch_for_errors

pytestmark = pytest.mark.django_db(transaction=True)


def test_select_all_then_change_owner(
    live_server: Any,
    page: Any,
    organization: Organization,
    ada_membership: Any,
    bob_membership: Any,
) -> None:
    for index in range(3):
        make_lead(organization, ada_membership.user, family_name=f"Browser{index}")
    problems = watch_for_errors(page)

    sign_in(page, live_server, ada_membership.user)
    page.goto(live_server.url + "/crm/leads/")

    select_all = page.locator("#select-all")
    assert select_all.is_visible()
    select_all.check()
    assert page.locator('input[name="ids"]:checked').count() == 3
    page.locator('input[name="ids"]').first.uncheck()
    assert page.evaluate("document.getElementById('select-all').indeterminate") is True
    select_all.check()

    page.select_option("#bulk-owner", str(bob_membership.user.pk))
    page.click('button[name="action"][value="owner"]')
    page.wait_for_url("**/crm/leads/")
    assert "The owner of 3 records was changed." in page.content()
    assert set(Lead.objects.values_list("owner", flat=True)) == {bob_membership.user.pk}
    assert problems == []


def test_typing_a_search_updates_the_list_in_place(
    live_server: Any, page: Any, organization: Organization, ada_membership: Any
) -> None:
    for name in ("Yamada", "Yamamoto", "Kato"):
        make_lead(organization, ada_membership.user, family_name=name)
    sign_in(page, live_server, ada_membership.user)
    page.goto(live_server.url + "/crm/leads/")
    page.evaluate("window.stayedOnThePage = true")

    page.locator("input[type=search]").press_sequentially("yama")

    # Under load the keys may come slower than the 400 ms debounce: wait for the
    # request of the last one (it pushes q=yama) and for no request in flight.
    expect(page).to_have_url(re.compile(r"q=yama"))
    page.wait_for_load_state("networkidle")
    expect(page.locator('input[name="ids"]')).to_have_count(2)
    assert page.evaluate("window.stayedOnThePage") is True  # no full page load
    assert page.locator("#record-count").inner_text() == "2 records"
    # "Select all" works on the new rows too.
    page.locator("#select-all").check()
    # Leaving the search box (its change event) must not reload the rows just ticked.
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(600)  # longer than the search's 400 ms debounce
    assert page.locator('input[name="ids"]:checked').count() == 2


def watch_for_errors_and_csp_violations(page: Any) -> list[str]:
    """watch_for_errors(), and the CSP violations the page itself reports, whatever the
    console makes of them."""
    problems = watch_for_errors(page)
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', (event) => console.error("
        "'CSP violation: ' + event.violatedDirective + ' ' + event.sourceFile));"
    )
    return problems


def test_searching_filtering_and_sorting_in_place_keeps_to_the_csp(
    live_server: Any, page: Any, organization: Organization, ada_membership: Any
) -> None:
    """QA saw "Applying inline style violates ... style-src 'self'" after this sequence.

    Nothing in the swapped list may carry a style attribute (htmx copies old elements'
    style attributes onto new ones while settling), htmx must not insert its indicator
    <style> (base.html turns includeIndicatorStyles off) and crm.js sets no style.
    """
    for name, status in (("Abe", "contacted"), ("Ueda", "contacted"), ("Kato", "new")):
        make_lead(
            organization, ada_membership.user, family_name=name, company="Greenfield", status=status
        )
    make_lead(
        organization,
        ada_membership.user,
        family_name="Mori",
        company="Bluewater",
        status="contacted",
    )
    problems = watch_for_errors_and_csp_violations(page)
    sign_in(page, live_server, ada_membership.user)
    page.goto(live_server.url + "/crm/leads/")
    page.evaluate("window.stayedOnThePage = true")

    page.locator("input[type=search]").press_sequentially("Greenfield")
    expect(page).to_have_url(re.compile(r"q=Greenfield"))
    page.wait_for_load_state("networkidle")
    page.get_by_label("Lead status").select_option("contacted")
    expect(page).to_have_url(re.compile(r"status=contacted"))
    page.wait_for_load_state("networkidle")
    page.get_by_label("Sort").select_option(label="Name (Z–A)")
    expect(page).to_have_url(re.compile(r"sort=-name"))
    page.wait_for_load_state("networkidle")

    expect(page.locator("#record-count")).to_have_text("2 records")
    rows = page.locator("#record-results tbody tr")
    expect(rows).to_have_count(2)
    assert [rows.nth(i).locator("td").nth(1).inner_text() for i in range(2)] == ["Ueda", "Abe"]
    assert page.evaluate("window.stayedOnThePage") is True  # swapped in place by htmx
    assert page.evaluate("document.querySelectorAll('[style]').length") == 0
    assert page.evaluate("document.querySelectorAll('style').length") == 0
    assert problems == []


def test_a_style_given_to_a_swapped_element_by_the_browser_is_not_copied_against_the_csp(
    live_server: Any, page: Any, organization: Organization, ada_membership: Any
) -> None:
    """A browser or its extensions may give elements a style through the CSSOM (Playwright
    does when a screenshot hides the caret), which the CSP allows. htmx must not copy such a style
    attribute onto the element that replaces it while settling: that setAttribute is an inline
    style the CSP refuses (seen in the Survey setup wizard). base.html settles no style."""
    for name, status in (("Abe", "contacted"), ("Kato", "new")):
        make_lead(organization, ada_membership.user, family_name=name, status=status)
    problems = watch_for_errors_and_csp_violations(page)
    sign_in(page, live_server, ada_membership.user)
    page.goto(live_server.url + "/crm/leads/")
    page.evaluate("document.getElementById('record-count').style.caretColor = 'transparent'")

    page.get_by_label("Lead status").select_option("contacted")
    expect(page).to_have_url(re.compile(r"status=contacted"))
    page.wait_for_load_state("networkidle")

    expect(page.locator("#record-count")).to_have_text("1 record")
    assert problems == []
