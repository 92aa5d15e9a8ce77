"""What the API app adds to the CRM core pages (through kizuna.crm.extensions)."""

from __future__ import annotations

from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from kizuna.crm import extensions
from kizuna.crm.models import Organization


def api_tokens_extension(request: HttpRequest, organization: Organization) -> extensions.Extension:
    return extensions.Extension(
        name=_("CRM REST API"),
        description=_("Personal API tokens for the REST API v1 of leads and contacts."),
        url=reverse("crm_api:tokens"),
    )


def api_tokens_nav_item(request: HttpRequest) -> extensions.NavItem:
    # Every member may have tokens, and only administrators see Settings.
    match = request.resolver_match
    return extensions.NavItem(
        label=_("API tokens"),
        url=reverse("crm_api:tokens"),
        is_current=bool(match and match.namespace == "crm_api"),
    )


def register() -> None:
    extensions.register_extension(api_tokens_extension)
    extensions.register_nav_item(api_tokens_nav_item)
