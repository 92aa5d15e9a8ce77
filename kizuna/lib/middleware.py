"""Middleware of the whole site: a shorter chain for the public pages, the CSP header built once.

The public survey pages (`/s/`) answer people who are not signed in, in bursts (issue 11):
each request there ran the whole chain of settings.MIDDLEWARE, signing-in, messages, htmx
and the user's language included, for pages that use none of them. PublicPathsMiddleware,
first in MIDDLEWARE, sends a request whose path starts with one of
settings.PUBLIC_PATH_PREFIXES through settings.PUBLIC_MIDDLEWARE instead (security headers,
session, language, CSRF, X-Frame-Options, CSP) and every other request on down the full
chain. Tests through Django's test client and live server run the same chains as
`kizuna serve`.
"""

from __future__ import annotations

import http
from collections.abc import Callable
from typing import Any

from csp.constants import HEADER
from csp.middleware import CheckableLazyObject
from csp.middleware import CSPMiddleware as BaseCSPMiddleware
from csp.utils import build_policy
from django.conf import settings
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponseBase
from django.urls import get_resolver, get_urlconf
from django.utils.module_loading import import_string

Handler = Callable[[HttpRequest], HttpResponseBase]
ViewHook = Callable[[HttpRequest, Callable[..., Any], Any, Any], HttpResponseBase | None]


class PublicPathsMiddleware:
    """Send the requests of the public pages through settings.PUBLIC_MIDDLEWARE alone."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response
        self.prefixes = tuple(settings.PUBLIC_PATH_PREFIXES)
        self.view_hooks: list[ViewHook] = []
        # Built as Django's handler builds its chain (BaseHandler.load_middleware), all sync.
        chain: Any = convert_exception_to_response(self._view)
        for path in reversed(settings.PUBLIC_MIDDLEWARE):
            middleware = import_string(path)(chain)
            if hasattr(middleware, "process_view"):
                self.view_hooks.insert(0, middleware.process_view)
            chain = convert_exception_to_response(middleware)
        self.public_chain: Handler = chain

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if request.path_info.startswith(self.prefixes):
            return self.public_chain(request)
        return self.get_response(request)

    def _view(self, request: HttpRequest) -> HttpResponseBase:
        """What Django's handler does between the middleware and the view (resolve, the
        middleware's process_view, the view), for function views that return a response."""
        match = get_resolver(get_urlconf()).resolve(request.path_info)
        request.resolver_match = match
        for hook in self.view_hooks:
            if (early := hook(request, match.func, match.args, match.kwargs)) is not None:
                return early
        response = match.func(request, *match.args, **match.kwargs)
        if response is None:
            raise ValueError(f"The view {match.view_name} returned None.")
        return response


_POLICY_PARTS = ("_csp_config", "_csp_update", "_csp_replace")
_DEBUG_PAGES = (http.HTTPStatus.INTERNAL_SERVER_ERROR, http.HTTPStatus.NOT_FOUND)


class CSPMiddleware(BaseCSPMiddleware):
    """django-csp's middleware with the site's policy built once per process.

    django-csp builds the header from settings.CONTENT_SECURITY_POLICY for every response;
    the policy is the same text unless a response asks for its own (the csp_update,
    csp_replace, csp_override decorators), a page used a nonce, or the settings change. Those
    cases, a report-only policy and the exclusions go through django-csp as before; the
    built text is kept with the settings' dictionary it was built from, so settings replaced
    (override_settings) are built again.
    """

    _built: tuple[Any, str] | None = None

    def policy(self) -> str:
        config = settings.CONTENT_SECURITY_POLICY
        built = self._built
        if built is None or built[0] is not config:
            built = (config, build_policy())
            self._built = built
        return built[1]

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        policy = settings.CONTENT_SECURITY_POLICY
        if (
            getattr(request, "_csp_nonce", None) is not None
            or settings.CONTENT_SECURITY_POLICY_REPORT_ONLY
            or not policy
            or policy.get("EXCLUDE_URL_PREFIXES")
            or HEADER in response
            or getattr(response, "_csp_exempt", False)
            or any(getattr(response, part, None) for part in _POLICY_PARTS)
            or (settings.DEBUG and response.status_code in _DEBUG_PAGES)
        ):
            return super().process_response(request, response)
        response[HEADER] = self.policy()
        # As django-csp does: a nonce asked for once the header is written raises.
        request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)  # type: ignore[attr-defined]
        return response
