"""Slots where other parts of the CRM add to the core pages, without the core importing them.

Register from your AppConfig.ready(); every callable is asked on each request and
may answer None to show nothing (for example while an integration is disabled).

- register_detail_action(func): func(request, record) -> HTML | None.
  A button or small form in the header of a lead or contact page
  (mail: "Send email").
- register_detail_panel(func): func(request, record) -> HTML | None.
  A section under the fields of a lead or contact page (Survey: sent surveys
  and responses).
- register_extension(func): func(request, organization) -> Extension | None.
  An entry in Settings > Extensions & APIs (Survey integration, API tokens).
- register_bulk_action(BulkAction(...)): a button of the list's bulk action
  bar, shown when `is_available(request, module)` says so; the list form is
  POSTed to `url_name` (button formaction) with `module` ("leads" or
  "contacts"), `bulk_action` (the key) and one `ids` field per selected row
  (mail: "Send email").
- register_nav_item(func): func(request) -> NavItem | None. A link in the CRM
  sub-navigation (mail: "Email templates").

HTML means a SafeString: use render_to_string() or format_html(), never a
plain str built from user data. `record` is a Lead or a Contact of the current
organization, already checked by the access helpers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest
from django.utils.safestring import SafeString

if TYPE_CHECKING:
    from kizuna.crm.models import Contact, Lead, Organization

RecordHtml = Callable[[HttpRequest, "Lead | Contact"], SafeString | None]


@dataclass(frozen=True)
class Extension:
    """One entry of Settings > Extensions & APIs."""

    name: Any  # a lazy translated string
    description: Any
    url: str
    status: Any = ""  # e.g. _("Enabled"); empty hides the badge
    is_enabled: bool = False


@dataclass(frozen=True)
class BulkAction:
    """A list bulk action handled by a view elsewhere."""

    key: str
    label: Any
    url_name: str
    is_available: Callable[[HttpRequest, str], bool]


@dataclass(frozen=True)
class NavItem:
    label: Any
    url: str
    is_current: bool = False


_detail_actions: list[RecordHtml] = []
_detail_panels: list[RecordHtml] = []
_extensions: list[Callable[[HttpRequest, Organization], Extension | None]] = []
_bulk_actions: list[BulkAction] = []
_nav_items: list[Callable[[HttpRequest], NavItem | None]] = []


def _add(registry: list[Any], item: Any) -> None:
    if item not in registry:  # ready() may run more than once in tests
        registry.append(item)


def register_detail_action(func: RecordHtml) -> RecordHtml:
    _add(_detail_actions, func)
    return func


def register_detail_panel(func: RecordHtml) -> RecordHtml:
    _add(_detail_panels, func)
    return func


def register_extension(
    func: Callable[[HttpRequest, Organization], Extension | None],
) -> Callable[[HttpRequest, Organization], Extension | None]:
    _add(_extensions, func)
    return func


def register_bulk_action(action: BulkAction) -> BulkAction:
    if all(existing.key != action.key for existing in _bulk_actions):
        _bulk_actions.append(action)
    return action


def register_nav_item(
    func: Callable[[HttpRequest], NavItem | None],
) -> Callable[[HttpRequest], NavItem | None]:
    _add(_nav_items, func)
    return func


def detail_actions(request: HttpRequest, record: Lead | Contact) -> list[SafeString]:
    return [html for func in _detail_actions if (html := func(request, record)) is not None]


def detail_panels(request: HttpRequest, record: Lead | Contact) -> list[SafeString]:
    return [html for func in _detail_panels if (html := func(request, record)) is not None]


def extensions(request: HttpRequest, organization: Organization) -> list[Extension]:
    return [entry for func in _extensions if (entry := func(request, organization)) is not None]


def bulk_actions(request: HttpRequest, module: str) -> list[BulkAction]:
    return [action for action in _bulk_actions if action.is_available(request, module)]


def bulk_action(key: str) -> BulkAction | None:
    return next((action for action in _bulk_actions if action.key == key), None)


def nav_items(request: HttpRequest) -> list[NavItem]:
    return [item for func in _nav_items if (item := func(request)) is not None]
