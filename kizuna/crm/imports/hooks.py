"""What the import app adds to the CRM core pages (through kizuna.crm.extensions)."""

from __future__ import annotations

from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from kizuna.crm import extensions


def imports_nav_item(request: HttpRequest) -> extensions.NavItem:
    match = request.resolver_match
    return extensions.NavItem(
        label=_("Import and export"),
        url=reverse("crm_imports:start"),
        is_current=bool(match and match.namespace == "crm_imports"),
    )


def register() -> None:
    extensions.register_nav_item(imports_nav_item)
