"""Helpers for browser tests (import them; not a plugin): sign a page in, and collect
what went wrong on it (4xx/5xx responses, console errors such as CSP violations)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.test import Client

from kizuna.identity.models import User


def sign_in(page: Any, live_server: Any, user: User) -> None:
    """Give the page's browser context a session of `user` (no trip through the form)."""
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": live_server.url,
            }
        ]
    )


def watch_for_errors(page: Any) -> list[str]:
    """The URLs of failed responses and the console errors of `page`, as they happen.

    The browser's own /favicon.ico request is not one of the page's; a failed load
    is counted by its response, not again by its console line.
    """
    problems: list[str] = []
    page.on(
        "response",
        lambda response: (
            problems.append(f"{response.status} {response.url}")
            if response.status >= 400 and not response.url.endswith("/favicon.ico")
            else None
        ),
    )
    page.on(
        "console",
        lambda message: (
            problems.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None
        ),
    )
    return problems
