"""Who may see an API token: its user, and the organization's administrators."""

from __future__ import annotations

from django.http import HttpRequest
from django.shortcuts import get_object_or_404

from kizuna.crm.access import current_membership
from kizuna.crm.api.models import ApiToken


def get_api_token_for_member(request: HttpRequest, pk: int) -> ApiToken:
    """A token of the current organization: the member's own, or any one for an administrator."""
    membership = current_membership(request)
    tokens = ApiToken.objects.of(membership.organization)
    if not membership.is_administrator:
        tokens = tokens.filter(user_id=membership.user_id)
    return get_object_or_404(tokens, pk=pk)
