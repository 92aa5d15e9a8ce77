"""Results of a survey for the members of its account: summary, responses, export, delete."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from django.views.decorators.http import require_http_methods

from kizuna.survey import validation
from kizuna.survey.access import current_membership, get_survey_for_member
from kizuna.survey.models import Response, Survey
from kizuna.survey.public import services as public_services
from kizuna.survey.results import services, summaries

RESPONSES_PER_PAGE = 50


class DateFilterForm(forms.Form):
    date_from = forms.DateField(
        label=pgettext_lazy("date range", "From"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    date_to = forms.DateField(
        label=pgettext_lazy("date range", "To"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        date_from, date_to = data.get("date_from"), data.get("date_to")
        if date_from and date_to and date_from > date_to:
            raise forms.ValidationError(_("The start date must not be after the end date."))
        return data


@dataclass(frozen=True)
class _Filter:
    """The date filter of a results page: its form, its days, the responses it selects."""

    form: DateFilterForm
    date_from: datetime.date | None
    date_to: datetime.date | None
    responses: QuerySet[Response]
    query: str


def _filtered(request: HttpRequest, survey: Survey) -> _Filter:
    """The date filter from the query string, the responses it selects, and its query."""
    form = DateFilterForm(request.GET or None)
    date_from: datetime.date | None = None
    date_to: datetime.date | None = None
    if form.is_bound and form.is_valid():
        date_from = form.cleaned_data.get("date_from")
        date_to = form.cleaned_data.get("date_to")
    query = urlencode(
        {
            key: value.isoformat()
            for key, value in (("date_from", date_from), ("date_to", date_to))
            if value
        }
    )
    responses = summaries.filter_responses(
        Response.objects.filter(survey=survey), date_from=date_from, date_to=date_to
    )
    return _Filter(form, date_from, date_to, responses, query)


def _context(request: HttpRequest, survey: Survey, **extra: Any) -> dict[str, Any]:
    member = current_membership(request)
    return {"survey": survey, "is_administrator": member.is_administrator, **extra}


@login_required
def summary(request: HttpRequest, survey_pk: int) -> HttpResponse:
    survey = get_survey_for_member(request, survey_pk)
    selected = _filtered(request, survey)
    per_day = summaries.responses_per_day(
        survey, date_from=selected.date_from, date_to=selected.date_to
    )
    context = _context(
        request,
        survey,
        form=selected.form,
        query=selected.query,
        response_count=sum(per_day.values()),
        over_time=summaries.responses_over_time(per_day),
        summaries=summaries.summarize(
            survey, date_from=selected.date_from, date_to=selected.date_to
        ),
        held=public_services.held_today(survey),
        section="summary",
    )
    return render(request, "survey/results/summary.html", context)


@login_required
def response_list(request: HttpRequest, survey_pk: int) -> HttpResponse:
    survey = get_survey_for_member(request, survey_pk)
    selected = _filtered(request, survey)
    paginator = Paginator(
        selected.responses.select_related("invitation").order_by("-submitted_at", "id"),
        RESPONSES_PER_PAGE,
    )
    page = paginator.get_page(request.GET.get("page"))
    context = _context(
        request,
        survey,
        form=selected.form,
        query=selected.query,
        page=page,
        response_count=paginator.count,
        section="responses",
    )
    return render(request, "survey/results/response_list.html", context)


def _get_response(survey: Survey, response_id: uuid.UUID) -> Response:
    return get_object_or_404(
        Response.objects.select_related("invitation"), survey=survey, pk=response_id
    )


@login_required
def response_detail(request: HttpRequest, survey_pk: int, response_id: uuid.UUID) -> HttpResponse:
    survey = get_survey_for_member(request, survey_pk)
    response = _get_response(survey, response_id)
    answers = {a.question_id: a.value for a in response.answers.all()}
    rows = [
        {
            "question": question,
            "answered": question.pk in answers,
            "display": validation.answer_display(question, answers.get(question.pk)),
        }
        for question in summaries.all_questions(survey)
        if question.pk in answers or not question.is_archived
    ]
    context = _context(request, survey, response=response, rows=rows, section="responses")
    return render(request, "survey/results/response_detail.html", context)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def delete_response(request: HttpRequest, survey_pk: int, response_id: uuid.UUID) -> HttpResponse:
    """Administrators only: a confirmation page, then the deletion (publishes response.deleted)."""
    survey = get_survey_for_member(request, survey_pk)
    if not current_membership(request).is_administrator:
        raise PermissionDenied
    response = _get_response(survey, response_id)
    if request.method == "POST":
        services.delete_response(response=response)
        messages.success(request, _("The response was deleted."))
        return redirect("survey:survey_results:responses", survey_pk=survey.pk)
    context = _context(request, survey, response=response, section="responses")
    return render(request, "survey/results/response_delete.html", context)


@login_required
def export_csv(request: HttpRequest, survey_pk: int) -> StreamingHttpResponse:
    """Every (filtered) response as CSV, UTF-8 with a BOM so spreadsheet apps read Japanese."""
    survey = get_survey_for_member(request, survey_pk)
    responses = _filtered(request, survey).responses
    language = translation.get_language()

    def lines() -> Any:
        # Streaming runs after the view returns: keep the user's language for the header.
        with translation.override(language):
            yield "\ufeff"
            yield from summaries.csv_lines(survey, responses)

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    filename = f"survey-{survey.pk}-responses.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def results_url(survey: Survey) -> str:
    """Where other pages (the survey builder) link to the results of `survey`."""
    return reverse("survey:survey_results:summary", kwargs={"survey_pk": survey.pk})
