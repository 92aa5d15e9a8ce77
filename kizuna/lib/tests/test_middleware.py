"""The CSP header built once per process (kizuna/lib/middleware.CSPMiddleware): the same text
django-csp builds, built again when the policy settings change, and django-csp's own way
for a nonce or a view's own policy."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from csp.constants import NONCE
from csp.decorators import csp_update
from csp.utils import build_policy
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.test import Client, RequestFactory, override_settings
from django.urls import reverse

from kizuna.lib.middleware import CSPMiddleware

OTHER_POLICY = {"DIRECTIVES": {"default-src": ["'none'"], "img-src": ["'self'"]}}
OTHER_DIRECTIVES = {"default-src 'none'", "img-src 'self'"}


def directives(header: str) -> set[str]:
    """The directives of a policy (django-csp writes them in no fixed order)."""
    return set(header.split("; "))


def page(request: HttpRequest) -> HttpResponse:
    return HttpResponse("page")


def served(view: Callable[[HttpRequest], HttpResponseBase], request: HttpRequest) -> HttpResponse:
    """`view`'s response to `request` through the middleware."""
    response = CSPMiddleware(view)(request)
    assert isinstance(response, HttpResponse)
    return response


def test_the_header_is_the_text_django_csp_builds_from_the_settings() -> None:
    response = served(page, RequestFactory().get("/"))
    assert response.headers["Content-Security-Policy"] == build_policy()
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


def test_a_change_of_the_policy_settings_changes_the_header() -> None:
    middleware = CSPMiddleware(page)

    def header() -> str:
        response = middleware(RequestFactory().get("/"))
        assert isinstance(response, HttpResponse)
        return response.headers["Content-Security-Policy"]

    before = header()
    with override_settings(CONTENT_SECURITY_POLICY=OTHER_POLICY):
        changed = header()
    after = header()
    assert directives(changed) == OTHER_DIRECTIVES
    assert before == after == build_policy()


@pytest.mark.django_db
def test_a_change_of_the_policy_settings_reaches_every_page_served(
    anonymous_client: Client,
) -> None:
    url = reverse("identity:login")
    assert anonymous_client.get(url).headers["Content-Security-Policy"] == build_policy()
    with override_settings(CONTENT_SECURITY_POLICY=OTHER_POLICY):
        changed = anonymous_client.get(url).headers["Content-Security-Policy"]
    assert directives(changed) == OTHER_DIRECTIVES


def test_a_page_that_uses_a_nonce_gets_it_in_its_header() -> None:
    def with_nonce(request: HttpRequest) -> HttpResponse:
        return HttpResponse(f"<script nonce='{request.csp_nonce}'></script>")  # type: ignore[attr-defined]

    policy = {"DIRECTIVES": {"default-src": ["'self'"], "script-src": ["'self'", NONCE]}}
    with override_settings(CONTENT_SECURITY_POLICY=policy):
        plain = served(page, RequestFactory().get("/"))
        request = RequestFactory().get("/")
        response = served(with_nonce, request)
    nonce = request._csp_nonce  # type: ignore[attr-defined]
    assert f"'nonce-{nonce}'" in response.headers["Content-Security-Policy"]
    assert f"nonce='{nonce}'" in response.content.decode()
    assert "nonce-" not in plain.headers["Content-Security-Policy"]


def test_a_nonce_asked_for_after_the_header_was_written_is_an_error() -> None:
    request = RequestFactory().get("/")
    served(page, request)
    with pytest.raises(Exception, match="csp_nonce"):
        str(request.csp_nonce)  # type: ignore[attr-defined]


def test_a_view_with_its_own_policy_keeps_it() -> None:
    @csp_update({"img-src": ["https://images.example.com"]})
    def own_policy(request: HttpRequest) -> HttpResponseBase:
        return HttpResponse("page")

    header = served(own_policy, RequestFactory().get("/")).headers["Content-Security-Policy"]
    assert "img-src 'self' data: https://images.example.com" in header
    assert header != build_policy()
