from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from kizuna.crm.access import current_membership, signed_in_user
from kizuna.crm.api import services
from kizuna.crm.api.access import get_api_token_for_member
from kizuna.crm.api.forms import ApiTokenForm
from kizuna.crm.api.models import ApiToken

# The new token travels to the next page in the session, so a reload cannot show it again.
NEW_TOKEN_KEY = "crm_api_new_token"  # noqa: S105 - a session key name


@never_cache  # the page shows a new token once: keep it out of every cache
@login_required
def token_list(request: HttpRequest) -> HttpResponse:
    membership = current_membership(request)
    form = ApiTokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        api_token, token = services.create_api_token(
            user=signed_in_user(request),
            organization=membership.organization,
            name=form.cleaned_data["name"],
        )
        request.session[NEW_TOKEN_KEY] = {"id": api_token.pk, "token": token}
        return redirect("crm_api:tokens")
    new_token = request.session.pop(NEW_TOKEN_KEY, None)
    tokens = ApiToken.objects.of(membership.organization)
    own = tokens.filter(user_id=membership.user_id).order_by("-created_at")
    others = (
        tokens.filter(revoked_at__isnull=True)
        .exclude(user_id=membership.user_id)
        .select_related("user")
        .order_by("user__email", "-created_at")
        if membership.is_administrator
        else ApiToken.objects.none()
    )
    return render(
        request,
        "crm_api/tokens.html",
        {
            "form": form,
            "tokens": own,
            "other_tokens": others,
            "new_token": new_token,
            "organization": membership.organization,
        },
    )


@require_POST
@login_required
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    api_token = get_api_token_for_member(request, pk)
    services.revoke_api_token(api_token=api_token)
    messages.success(request, _("The token “%(name)s” was revoked.") % {"name": api_token.name})
    return redirect("crm_api:tokens")
