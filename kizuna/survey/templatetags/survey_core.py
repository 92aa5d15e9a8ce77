"""Template helpers of the Survey core pages."""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import NoReverseMatch, reverse

register = template.Library()


@register.simple_tag
def maybe_url(name: str, *args: Any) -> str:
    """The URL of `name`, or "" when that page is not part of this deployment (yet)."""
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return ""
