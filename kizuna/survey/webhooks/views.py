"""Settings > Webhooks: endpoints, their deliveries and attempts, replay (administrators only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count, Prefetch, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from kizuna.lib import cursors
from kizuna.survey.access import get_admin_membership, signed_in_user
from kizuna.survey.pages import render_page
from kizuna.survey.webhooks import services
from kizuna.survey.webhooks.forms import ResendSinceForm, WebhookEndpointForm
from kizuna.survey.webhooks.models import Delivery, DeliveryAttempt, WebhookEndpoint
from kizuna.work.leases import WorkStatus

DELIVERIES_PER_PAGE = 50
UNFINISHED = (WorkStatus.PENDING, WorkStatus.LEASED)
DELIVERY_STATUSES = frozenset(WorkStatus.values)


def _render(request: HttpRequest, template: str, context: dict[str, Any]) -> HttpResponse:
    return render_page(request, template, {"nav": "webhooks", **context})


def get_endpoint_for_admin(request: HttpRequest, pk: int) -> WebhookEndpoint:
    """The endpoint of the current account: 403 for plain members, 404 for other accounts."""
    member = get_admin_membership(request)
    return get_object_or_404(WebhookEndpoint.objects.of(member.account_id), pk=pk)


@login_required
@require_http_methods(["GET", "POST"])
def endpoint_list(request: HttpRequest) -> HttpResponse:
    member = get_admin_membership(request)
    form = WebhookEndpointForm(request.POST or None, account=member.account)
    if request.method == "POST" and form.is_valid():
        try:
            endpoint, _secret = services.create_endpoint(
                account=member.account,
                url=form.cleaned_data["url"],
                events=form.cleaned_data["events"],
                description=form.cleaned_data["description"],
                by=signed_in_user(request),
            )
        except ValidationError as error:
            for field, field_errors in error.message_dict.items():
                for message in field_errors:
                    form.add_error(field if field in form.fields else None, message)
        else:
            messages.success(
                request,
                _("The endpoint was added. Give its signing secret to the receiving service."),
            )
            return redirect("survey:survey_webhooks:endpoint", pk=endpoint.pk)
    endpoints = WebhookEndpoint.objects.of(member.account_id).annotate(
        pending_count=Count("deliveries", filter=Q(deliveries__status__in=UNFINISHED)),
        failed_count=Count("deliveries", filter=Q(deliveries__status=WorkStatus.FAILED)),
    )
    return _render(
        request,
        "survey_webhooks/endpoint_list.html",
        {"member": member, "endpoints": endpoints, "form": form},
    )


@dataclass(frozen=True)
class DeliveryPage:
    """One page of an endpoint's deliveries, newest first, cut by cursors (never OFFSET)."""

    deliveries: list[Delivery]
    newer_cursor: str | None
    older_cursor: str | None


def _cursor(delivery: Delivery) -> str:
    return cursors.encode_cursor(delivery.created_at, delivery.pk)


def page_of_deliveries(
    deliveries: QuerySet[Delivery], *, before: str = "", after: str = ""
) -> DeliveryPage:
    """The deliveries older than `before`, or newer than `after`, or else the newest ones.

    A cursor that is not one of ours, or a newer page that would not be full,
    starts again from the newest deliveries.
    """
    size = DELIVERIES_PER_PAGE
    older_than = cursors.integer_position(before)
    newer_than = cursors.integer_position(after) if older_than is None else None
    if newer_than is not None:
        at, pk = newer_than
        rows = list(
            deliveries.filter(Q(created_at__gt=at) | Q(created_at=at, pk__gt=pk)).order_by(
                "created_at", "id"
            )[: size + 1]
        )
        if len(rows) > size:
            rows = rows[:size][::-1]
            return DeliveryPage(rows, newer_cursor=_cursor(rows[0]), older_cursor=_cursor(rows[-1]))
    newest = deliveries.order_by("-created_at", "-id")
    is_first = True
    if older_than is not None:
        at, pk = older_than
        newest = newest.filter(Q(created_at__lt=at) | Q(created_at=at, pk__lt=pk))
        is_first = False
    rows = list(newest[: size + 1])
    has_older = len(rows) > size
    rows = rows[:size]
    return DeliveryPage(
        rows,
        newer_cursor=_cursor(rows[0]) if rows and not is_first else None,
        older_cursor=_cursor(rows[-1]) if has_older else None,
    )


@never_cache  # the page shows the signing secret
@login_required
def endpoint_detail(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = get_endpoint_for_admin(request, pk)
    status = request.GET.get("status", "")
    deliveries = endpoint.deliveries.prefetch_related(
        Prefetch("attempts_made", queryset=DeliveryAttempt.objects.order_by("-attempted_at", "-id"))
    )
    if status in DELIVERY_STATUSES:
        deliveries = deliveries.filter(status=status)
    else:
        status = ""
    page = page_of_deliveries(
        deliveries, before=request.GET.get("before", ""), after=request.GET.get("after", "")
    )
    return _render(
        request,
        "survey_webhooks/endpoint_detail.html",
        {
            "endpoint": endpoint,
            "secret": endpoint.signing_secret(),
            "deliveries": page.deliveries,
            "newer_query": _page_query(status, "after", page.newer_cursor),
            "older_query": _page_query(status, "before", page.older_cursor),
            "status": status,
            "statuses": [("", _("All")), *Delivery._meta.get_field("status").choices],  # type: ignore[misc]
            "failed_count": endpoint.deliveries.filter(status=WorkStatus.FAILED).count(),
            "waiting_count": endpoint.deliveries.filter(status__in=UNFINISHED).count(),
            "resend_form": ResendSinceForm(),
        },
    )


def _page_query(status: str, key: str, cursor: str | None) -> str:
    """The query string of a neighbouring page, keeping the status filter; "" when there is none."""
    if cursor is None:
        return ""
    return urlencode({**({"status": status} if status else {}), key: cursor})


@login_required
@require_POST
def delivery_replay(request: HttpRequest, pk: int, delivery_pk: int) -> HttpResponse:
    endpoint = get_endpoint_for_admin(request, pk)
    delivery = get_object_or_404(Delivery, endpoint=endpoint, pk=delivery_pk)
    if not endpoint.is_enabled:
        messages.error(request, _("Enable the endpoint before replaying its deliveries."))
    elif services.replay_delivery(delivery=delivery, by=signed_in_user(request)):
        messages.success(request, _("The delivery will be sent again in a moment."))
    else:
        messages.error(request, _("This delivery is being sent right now; try again shortly."))
    return redirect("survey:survey_webhooks:endpoint", pk=endpoint.pk)


@login_required
@require_POST
def endpoint_enable(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = get_endpoint_for_admin(request, pk)
    services.enable_endpoint(endpoint=endpoint, by=signed_in_user(request))
    messages.success(request, _("The endpoint is enabled again and receives new events."))
    return redirect("survey:survey_webhooks:endpoint", pk=endpoint.pk)


@login_required
@require_http_methods(["GET", "POST"])
def endpoint_delete(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = get_endpoint_for_admin(request, pk)
    if request.method == "POST":
        services.delete_endpoint(endpoint=endpoint, by=signed_in_user(request))
        messages.success(request, _("The endpoint was deleted."))
        return redirect("survey:survey_webhooks:endpoints")
    return _render(request, "survey_webhooks/endpoint_delete.html", {"endpoint": endpoint})


@login_required
@require_POST
def endpoint_retry_failed(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = get_endpoint_for_admin(request, pk)
    if not endpoint.is_enabled:
        messages.error(request, _("Enable the endpoint before replaying its deliveries."))
        return redirect("survey:survey_webhooks:endpoint", pk=endpoint.pk)
    count = services.retry_failed_deliveries(endpoint=endpoint, by=signed_in_user(request))
    messages.success(
        request,
        ngettext(
            "%(count)d failed delivery will be sent again in a moment.",
            "%(count)d failed deliveries will be sent again in a moment.",
            count,
        )
        % {"count": count},
    )
    return redirect("survey:survey_webhooks:endpoint", pk=endpoint.pk)


@login_required
@require_POST
def endpoint_resend(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = get_endpoint_for_admin(request, pk)
    form = ResendSinceForm(request.POST)
    if not endpoint.is_enabled:
        messages.error(request, _("Enable the endpoint before replaying its deliveries."))
    elif not form.is_valid():
        messages.error(request, _("Enter the date and time to send again from."))
    else:
        count = services.resend_deliveries_since(
            endpoint=endpoint, since=form.cleaned_data["since"], by=signed_in_user(request)
        )
        messages.success(
            request,
            ngettext(
                "%(count)d delivery will be sent again in a moment.",
                "%(count)d deliveries will be sent again in a moment.",
                count,
            )
            % {"count": count},
        )
    return redirect("survey:survey_webhooks:endpoint", pk=endpoint.pk)
