"""The API docs page renders in Chromium under the strict CSP, from local files only."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect


@pytest.mark.django_db(transaction=True)
def test_the_swagger_docs_render_without_outside_requests(live_server: Any, page: Any) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    csp_errors: list[str] = []
    page.on(
        "console",
        lambda message: (
            csp_errors.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    page.goto(f"{live_server.url}/crm/api/v1/docs")
    expect(page.locator("#swagger-ui")).to_contain_text("Kizuna CRM API")
    expect(page.locator("#swagger-ui")).to_contain_text("/crm/api/v1/leads")
    assert all(url.startswith(live_server.url) for url in requested), requested
    assert csp_errors == []
