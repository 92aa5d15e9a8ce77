"""Every route of both services is in a persona matrix (issue #8 point 4): a route that is in
none fails here with the matrix it belongs to (kizuna/testing/matrix.py says which)."""

from __future__ import annotations

from pathlib import Path

from kizuna.testing import matrix

ROOT = Path(__file__).resolve().parents[2]
# Not a page of either service: the site root (a redirect to a service) and the favicon.
OUTSIDE = {"home", ""}


def test_every_route_belongs_to_a_persona_matrix() -> None:
    orphans = sorted(
        f"{route.name or '(no name)'} ({route.path})"
        for route in matrix.all_routes()
        if matrix.matrix_of(route) is None
        and route.name not in OUTSIDE
        and route.name.split(":", 1)[0] not in matrix.OUTSIDE_THE_SERVICES
    )
    assert not orphans, (
        f"Route(s) in no persona matrix: {', '.join(orphans)}. Give the URLs a namespace "
        "of a service (crm_<app> for the CRM, survey_<app> for the Survey service) and list "
        "them in that service's matrix (kizuna/testing/matrix.py lists the four), or, for a "
        "route that belongs to neither service, add it to OUTSIDE in this file."
    )


def test_the_four_matrices_exist() -> None:
    for module in (matrix.CRM_PAGES, matrix.CRM_API, matrix.SURVEY_PAGES, matrix.SURVEY_API):
        assert (ROOT / module).is_file(), module
