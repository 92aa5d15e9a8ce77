"""Real Chromium against the live server: sign-in and the header's language switcher."""

import re

from playwright.sync_api import expect

from kizuna.testing.personas import PASSWORD


def test_user_signs_in_and_switches_to_japanese_from_the_header(page, live_server, user):
    page.goto(f"{live_server.url}/accounts/sign-in/")
    page.get_by_label("Email address").fill("pat@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/(crm|survey)/$"))
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()

    page.get_by_label("Language").select_option("ja")
    page.get_by_role("button", name="Switch").click()

    expect(page.locator("html")).to_have_attribute("lang", "ja")
    expect(page.get_by_role("button", name="サインアウト")).to_be_visible()
    user.refresh_from_db()
    assert user.language == "ja"


def test_signed_out_visitor_switches_the_sign_in_page_to_japanese(page, live_server, db):
    page.goto(f"{live_server.url}/accounts/sign-in/")

    page.get_by_label("Language").select_option("ja")
    page.get_by_role("button", name="Switch").click()

    expect(page.get_by_role("heading", name="サインイン")).to_be_visible()
    expect(page.get_by_label("メールアドレス")).to_be_visible()


def test_browser_asking_for_japanese_gets_the_sign_in_page_in_japanese(new_page, live_server, db):
    page = new_page("ja-JP")

    page.goto(f"{live_server.url}/accounts/sign-in/")

    expect(page.get_by_role("heading", name="サインイン")).to_be_visible()
    expect(page.get_by_role("link", name="パスワードをお忘れですか？")).to_be_visible()


def test_browser_asking_for_english_gets_the_sign_in_page_in_english(new_page, live_server, db):
    page = new_page("en-US")

    page.goto(f"{live_server.url}/accounts/sign-in/")

    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "en")


def test_browser_asking_for_another_language_gets_english(new_page, live_server, db):
    page = new_page("fr-FR")

    page.goto(f"{live_server.url}/accounts/sign-in/")

    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_throttled_sign_in_shows_the_wait_message_in_the_browser(page, live_server, user, settings):
    settings.KIZUNA_SIGNIN_MAX_FAILURES = 2
    settings.KIZUNA_SIGNIN_WINDOW_SECONDS = 600
    page.goto(f"{live_server.url}/accounts/sign-in/")
    for password in ("wrong-1", "wrong-2", PASSWORD):
        page.get_by_label("Email address").fill("pat@example.com")
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("alert")).to_have_text(
        "Too many failed sign-ins for this email address from your network. "
        "Wait 10 minutes, then try again."
    )


def test_header_stays_usable_on_a_phone(new_page, live_server, user):
    page = new_page("en-US")
    page.set_viewport_size({"width": 375, "height": 700})
    page.goto(f"{live_server.url}/accounts/sign-in/")
    page.get_by_label("Email address").fill("pat@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/(crm|survey)/$"))

    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375
    expect(page.get_by_role("button", name="Sign out")).to_be_in_viewport()
    expect(page.get_by_role("link", name="CRM")).to_be_in_viewport()


def test_sign_in_page_loads_our_stylesheet_without_console_errors(page, live_server, db):
    failed_responses: list[str] = []
    console_errors: list[str] = []
    page.on("response", lambda r: failed_responses.append(r.url) if r.status >= 400 else None)
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)

    page.goto(f"{live_server.url}/accounts/sign-in/")

    assert failed_responses == []
    assert console_errors == []  # a CSP violation (inline style or script) shows up here
    header_color = page.locator(".site-header").evaluate(
        "element => getComputedStyle(element).backgroundColor"
    )
    assert header_color == "rgb(16, 42, 67)"
