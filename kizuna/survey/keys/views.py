"""Settings > SC key: an administrator sees, copies and regenerates their key (K1, K2)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from kizuna.lib.crypto import DecryptionError
from kizuna.survey.access import get_admin_membership, signed_in_user
from kizuna.survey.keys import services
from kizuna.survey.pages import render_page


def _render(request: HttpRequest, template: str, context: dict[str, Any]) -> HttpResponse:
    return render_page(request, template, {"nav": "sc-key", **context})


@never_cache  # the page shows a secret: keep it out of every cache
@login_required
def sc_key(request: HttpRequest) -> HttpResponse:
    member = get_admin_membership(request)
    service_key = services.get_or_create_key(member=member, by=signed_in_user(request))
    try:
        key = service_key.reveal()
    except DecryptionError:
        key = None  # stored under a secret key this server no longer has: regenerate it
    return _render(
        request,
        "survey_keys/sc_key.html",
        {"member": member, "service_key": service_key, "key": key},
    )


@login_required
@require_http_methods(["GET", "POST"])
def regenerate(request: HttpRequest) -> HttpResponse:
    member = get_admin_membership(request)
    if request.method == "POST":
        services.regenerate_key(member=member, by=signed_in_user(request))
        messages.success(
            request,
            _(
                "A new SC key was generated. The old key no longer works: reconnect the CRM with "
                "the new key."
            ),
        )
        return redirect("survey:survey_keys:sc-key")
    return _render(request, "survey_keys/regenerate.html", {"member": member})
