"""Persona matrices: every route of both services, asked by every persona (issue #8 point 4).

Four matrices cover every route; each is a test module with a MATRIX table:

- CRM pages, every URL name of the `crm` and `crm_*` namespaces:
  kizuna/crm/tests/test_persona_matrix.py
- CRM REST API, every operation of /crm/api/v1/ and its documents:
  kizuna/crm/api/tests/test_persona_matrix.py
- Survey pages, every URL name of the `survey`, `survey_*` and `survey_public` namespaces:
  kizuna/survey/tests/test_persona_matrix.py
- Survey REST API, every operation of /survey/api/v1/ and its documents:
  kizuna/survey/api/tests/test_persona_matrix.py

Each module fails when a route is missing from its table (or the table names a route that
is gone), and kizuna/tests/test_route_matrices.py fails when a route belongs to no matrix at
all. The failure says what to add and where.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver

SIGN_IN = "sign-in"  # an expected answer: a redirect to the sign-in page

CRM_PAGES = "kizuna/crm/tests/test_persona_matrix.py"
CRM_API = "kizuna/crm/api/tests/test_persona_matrix.py"
SURVEY_PAGES = "kizuna/survey/tests/test_persona_matrix.py"
SURVEY_API = "kizuna/survey/api/tests/test_persona_matrix.py"
CRM_API_NAMESPACE = "crm:crm_api_v1"
SURVEY_API_NAMESPACE = "survey:survey_api_v1"

# Routes that are neither service: sign-in, profile, language, the local mailbox (tested in
# kizuna/identity/tests), the site root and the favicon.
OUTSIDE_THE_SERVICES = ("identity",)


@dataclass(frozen=True)
class Route:
    """One named URL pattern: `name` is namespaced ("crm_mail:template")."""

    name: str
    path: str  # "/crm/mail/templates/<int:pk>/"


def all_routes() -> Iterator[Route]:
    """Every URL pattern the project serves, with its namespaced name ("" if it has none)."""

    def walk(patterns: Iterable[Any], prefix: str, namespace: str) -> Iterator[Route]:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = namespace
                if pattern.namespace:
                    inner = f"{namespace}:{pattern.namespace}" if namespace else pattern.namespace
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
            elif isinstance(pattern, URLPattern):
                name = f"{namespace}:{pattern.name}" if namespace else (pattern.name or "")
                yield Route(name if pattern.name else "", "/" + prefix + str(pattern.pattern))

    yield from walk(get_resolver().url_patterns, "", "")


def _in_namespace(name: str, namespace: str) -> bool:
    return name.startswith(namespace + ":")


def _service_of(name: str, service: str) -> bool:
    """`crm` owns crm:..., crm_mail:..., crm_integration:... (and `survey` likewise)."""
    top = name.split(":", 1)[0]
    return top == service or top.startswith(service + "_")


def matrix_of(route: Route) -> str | None:
    """The matrix module that must list `route`; None for routes outside both services."""
    if _in_namespace(route.name, CRM_API_NAMESPACE):
        return CRM_API
    if _in_namespace(route.name, SURVEY_API_NAMESPACE):
        return SURVEY_API
    if _service_of(route.name, "crm"):
        return CRM_PAGES
    if _service_of(route.name, "survey"):
        return SURVEY_PAGES
    return None


def page_routes(service: str) -> dict[str, str]:
    """{URL name: path} of the pages of `service` ("crm" or "survey"), without its API."""
    module = CRM_PAGES if service == "crm" else SURVEY_PAGES
    return {route.name: route.path for route in all_routes() if matrix_of(route) == module}


def _openapi_path(django_path: str) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", django_path)


def api_routes(api: Any, namespace: str) -> set[str]:
    """ "METHOD /path" of every operation of a django-ninja `api` (from its OpenAPI document),
    and "GET /path" of its other URLs (the document itself, the docs page, the root)."""
    operations = {
        f"{method.upper()} {path}"
        for path, methods in api.get_openapi_schema()["paths"].items()
        for method in methods
    }
    paths = {key.split(" ", 1)[1] for key in operations}
    others = {
        f"GET {_openapi_path(route.path)}"
        for route in all_routes()
        if _in_namespace(route.name, namespace) and _openapi_path(route.path) not in paths
    }
    return operations | others


def coverage_problems(
    *,
    served: Mapping[str, str] | Iterable[str],
    listed: Iterable[str],
    module: str,
    how: str,
    line: str,
) -> list[str]:
    """What a matrix lacks or has too much, in words that say what to change and where.

    `served` maps each route to its path (or is the routes alone); `line` is the line to add
    for a missing route, with {name} and {path} filled in.
    """
    paths = dict(served) if isinstance(served, Mapping) else dict.fromkeys(served, "")
    listed = set(listed)
    problems = []
    missing, gone = sorted(set(paths) - listed), sorted(listed - set(paths))
    if missing:
        lines = "\n".join(
            "    " + line.format(name=name, path=paths[name] or name) for name in missing
        )
        problems.append(
            f"{len(missing)} route(s) are in no persona matrix: {', '.join(missing)}.\n"
            f"Add to MATRIX in {module}, with every persona's answer ({how}):\n{lines}"
        )
    if gone:
        problems.append(
            f"MATRIX in {module} lists route(s) that no longer exist: {', '.join(gone)}. "
            "Remove them (or rename them to the route's new name)."
        )
    return problems
