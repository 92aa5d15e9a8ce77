from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST


@csrf_exempt
@require_POST
def intake(request: HttpRequest, token: str) -> HttpResponse:
    """The webhook intake of the connection with `token` (its implementation follows).

    Until then every delivery is answered 404, which the Survey service retries later:
    never 410, which would stop deliveries for good.
    """
    raise Http404
