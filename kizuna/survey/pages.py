"""Rendering inside the Survey layout, for the core, SC key and webhook pages alike.

The layout's subnav needs the current membership and the user's accounts, and its top
the invitations waiting for the user's answer; every page gets them here, so no view
has to remember them.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from kizuna.survey import access


def render_page(
    request: HttpRequest, template: str, context: dict[str, Any], *, status: int = 200
) -> HttpResponse:
    """`template` in the Survey layout; `context` may name the subnav entry as "nav"."""
    member = access.current_membership_or_none(request)
    context.setdefault("member", member)
    context.setdefault("nav", "surveys")
    context.setdefault("memberships", access.memberships_of(request) if member else [])
    context.setdefault("pending_invitations", access.pending_invitations_of(request))
    return render(request, template, context, status=status)


def render_form_page(
    request: HttpRequest, template: str, form: forms.BaseForm, context: dict[str, Any]
) -> HttpResponse:
    """A page around `form`: 400 when what was sent has errors, so the failure is visible."""
    return render_page(
        request,
        template,
        {"form": form, **context},
        status=400 if form.is_bound and form.errors else 200,
    )
