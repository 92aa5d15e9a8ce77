"""K1 in a real browser: the copy button works under the strict CSP, without inline scripts."""

from __future__ import annotations

from django.conf import settings
from django.test import Client

from kizuna.survey.keys.models import ServiceKey


def sign_in(page, live_server, client: Client) -> None:
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": cookie.value, "url": live_server.url}]
    )


def test_k1_copy_button_puts_the_key_on_the_clipboard(page, live_server, ada_client, ada_member):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    sign_in(page, live_server, ada_client)
    csp_violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            csp_violations.append(message.text)
            if "Content Security Policy" in message.text
            else None
        ),
    )

    page.goto(live_server.url + "/survey/settings/sc-key/")
    key = ServiceKey.objects.get(member=ada_member, revoked_at__isnull=True).reveal()
    assert page.locator("#sc-key-value").inner_text() == key
    assert page.locator("#sc-key-email").inner_text() == "ada@example.com"

    button = page.get_by_role("button", name="Copy")
    button.click()

    assert page.evaluate("navigator.clipboard.readText()") == key
    assert page.get_by_role("button", name="Copied").is_visible()
    assert csp_violations == []


def test_k2_regenerating_in_the_browser_shows_the_new_key(
    page, live_server, ada_client, ada_member
):
    sign_in(page, live_server, ada_client)
    page.goto(live_server.url + "/survey/settings/sc-key/")
    old = page.locator("#sc-key-value").inner_text()

    page.get_by_role("link", name="Regenerate…").click()
    page.get_by_role("button", name="Regenerate the key").click()

    page.wait_for_url(live_server.url + "/survey/settings/sc-key/")
    new = page.locator("#sc-key-value").inner_text()
    assert new != old
    assert new == ServiceKey.objects.get(member=ada_member, revoked_at__isnull=True).reveal()
    assert ServiceKey.objects.get(member=ada_member, revoked_at__isnull=False).reveal() == old
