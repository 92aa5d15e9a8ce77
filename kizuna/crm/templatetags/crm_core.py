"""Template tags of the CRM layout: the organization switcher and the sub-navigation; the
labels of a list's choices."""

from __future__ import annotations

from typing import Any

from django import template
from django.core.exceptions import FieldDoesNotExist
from django.http import Http404, HttpRequest
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from kizuna.crm import extensions
from kizuna.crm.access import current_membership, memberships_of
from kizuna.crm.models import Activity, Contact, Lead

register = template.Library()


@register.filter
def choice_label(value: Any, labels: dict[str, Any]) -> Any:
    """The label of a choice from a dict the view made once for the page: a model's
    get_FOO_display() hashes the lazy label of every choice on each call (a fifth of a lead
    list page's CPU for its 100 labels)."""
    return labels.get(value, value)


def _membership(request: HttpRequest) -> Any:
    try:
        return current_membership(request)
    except Http404:
        return None


@register.inclusion_tag("crm/_organization_switcher.html", takes_context=True)
def crm_organization_switcher(context: dict[str, Any]) -> dict[str, Any]:
    request = context["request"]
    memberships = memberships_of(request)
    membership = _membership(request) if memberships else None
    return {
        "request": request,
        "csrf_token": context.get("csrf_token"),
        "memberships": memberships,
        "current": membership,
    }


@register.inclusion_tag("crm/_subnav.html", takes_context=True)
def crm_subnav(context: dict[str, Any]) -> dict[str, Any]:
    request = context["request"]
    membership = _membership(request) if request.user.is_authenticated else None
    match = request.resolver_match
    name = match.url_name if match and match.namespace == "crm" else ""
    if match and match.namespace == "crm_audit":
        name = "settings-audit-log"
    items: list[tuple[Any, str, bool]] = []
    if membership is not None:
        items = [
            (_("Home"), reverse("crm:home"), name == "home"),
            (_("Leads"), reverse("crm:lead-list"), name.startswith("lead-")),
            (_("Contacts"), reverse("crm:contact-list"), name.startswith("contact-")),
        ]
        items += [(item.label, item.url, item.is_current) for item in extensions.nav_items(request)]
        if membership.is_administrator:
            items.append(
                (
                    _("Settings"),
                    reverse("crm:settings"),
                    name.startswith(("settings", "member-", "invitation-")),
                )
            )
    return {"items": items}


@register.filter
def changed_fields(activity: Activity) -> str:
    """The labels of the fields an "edited" activity names, in the current language."""
    names = activity.data.get("fields", []) if isinstance(activity.data, dict) else []
    model = Lead if activity.lead_id else Contact
    labels = []
    for name in names:
        try:
            labels.append(str(getattr(model._meta.get_field(name), "verbose_name", name)))
        except FieldDoesNotExist:  # a field removed since: show its name
            labels.append(str(name))
    return ", ".join(labels)
