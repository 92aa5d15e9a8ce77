from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from kizuna.crm.access import get_organization_for_admin, get_record_for_member, signed_in_user
from kizuna.crm.integration.models import (
    REFUSED_OUTCOMES,
    Connection,
    IntakeEvent,
    Reconciliation,
    UnmatchedResponse,
    current_connection,
)
from kizuna.crm.integration.responses import history, services
from kizuna.crm.integration.services import IntegrationError

MAX_BODY_BYTES = 4 * 1024 * 1024
HISTORY_PAGE_SIZE = 50


@csrf_exempt
@require_POST
def intake(request: HttpRequest, token: str) -> HttpResponse:
    """Where the Survey service delivers the webhooks of the connection with `token` (E4, D6).

    An unknown token answers 404, which the Survey service retries: never 410, which would
    stop its deliveries for good.
    """
    connection = Connection.objects.filter(intake_token=token).first()
    if connection is None:
        raise Http404
    if len(request.body) > MAX_BODY_BYTES:
        return JsonResponse({"outcome": "too_large"}, status=413)
    answer = services.receive_webhook(
        connection=connection, body=request.body, headers=dict(request.headers)
    )
    return JsonResponse(answer.body(), status=answer.status)


@login_required
def delivery(request: HttpRequest) -> HttpResponse:
    """Administrators: reconciliation, refused deliveries and unmatched responses (E4)."""
    organization = get_organization_for_admin(request)
    connection = Connection.objects.of(organization).order_by("-enabled_at", "-pk").first()
    unmatched = UnmatchedResponse.objects.of(organization).filter(dismissed_at__isnull=True)
    return render(
        request,
        "crm_survey_responses/delivery.html",
        {
            "connection": connection,
            "current": current_connection(organization),
            "reconciliations": (
                Reconciliation.objects.filter(connection=connection).order_by("-created_at")[:10]
                if connection
                else []
            ),
            "refused": IntakeEvent.objects.of(organization)
            .filter(outcome__in=REFUSED_OUTCOMES)
            .order_by("-received_at")[:20],
            "unmatched": unmatched.order_by("-submitted_at")[:200],
            "unmatched_count": unmatched.count(),
        },
    )


@login_required
@require_POST
def reconcile_now(request: HttpRequest) -> HttpResponse:
    """ "Run now": queue a reconciliation for the worker."""
    organization = get_organization_for_admin(request)
    try:
        services.request_reconciliation(
            organization=organization, requested_by=signed_in_user(request)
        )
    except IntegrationError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            _("Reconciliation started: responses that delivery missed are recorded in a moment."),
        )
    next_url = request.POST.get("next", "")
    if next_url and url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(next_url)
    return redirect("crm_survey_responses:delivery")


@login_required
@require_POST
def dismiss_unmatched(request: HttpRequest, pk: int) -> HttpResponse:
    organization = get_organization_for_admin(request)
    unmatched = get_object_or_404(UnmatchedResponse.objects.of(organization), pk=pk)
    UnmatchedResponse.objects.filter(pk=unmatched.pk, dismissed_at__isnull=True).update(
        dismissed_at=timezone.now(), dismissed_by=signed_in_user(request)
    )
    messages.success(request, _("The unmatched response was dismissed."))
    return redirect("crm_survey_responses:delivery")


@login_required
def record_history(request: HttpRequest, module: str, pk: int) -> HttpResponse:
    """Every survey response of a lead or contact, newest first, page by page (E1)."""
    record = get_record_for_member(request, module, pk)
    if current_connection(record.organization_id) is None:
        raise Http404  # D2: no Survey section while the integration is not set up
    page = Paginator(history.responses_of(record), HISTORY_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "crm_survey_responses/history.html",
        {
            "module": module,
            "record": record,
            "page": page,
            "responses": [history.rendered_response(response, module=module) for response in page],
        },
    )
