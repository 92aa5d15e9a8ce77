from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from kizuna.crm.access import get_organization_for_member
from kizuna.crm.integration.client import SurveyError, SurveyInfo
from kizuna.crm.integration.sending import services
from kizuna.crm.integration.sending.forms import SendSurveyForm
from kizuna.crm.integration.sending.hooks import SEND_SURVEY_BULK_ACTION
from kizuna.crm.mail.access import (
    SelectionError,
    get_module,
    recipients_context,
    selected_records,
)
from kizuna.crm.mail.extensions import PlaceholderError
from kizuna.crm.models import Contact, Lead, Organization

LIST_URL_NAMES = {"leads": "crm:lead-list", "contacts": "crm:contact-list"}


@login_required
@require_http_methods(["GET", "POST"])
def send_survey(request: HttpRequest) -> HttpResponse:
    """Send a survey by email to one lead or contact, or to a list's selection (E2).

    GET ?module=leads&ids=1 from a record's page; a list's selection is POSTed with
    `bulk_action=send_survey`. Sending is refused, with the reason, while the
    integration cannot make working links.
    """
    organization = get_organization_for_member(request)
    source = request.POST if request.method == "POST" else request.GET
    module = get_module(source.get("module"))
    try:
        records = selected_records(request, organization, module, source)
    except SelectionError as error:
        messages.error(request, str(error))
        return redirect(LIST_URL_NAMES[module])
    with services.surveys_listed_once():
        return _send_survey(request, organization, module, records)


def _send_survey(
    request: HttpRequest,
    organization: Organization,
    module: str,
    records: list[Lead | Contact],
) -> HttpResponse:
    refusal = ""
    surveys: list[SurveyInfo] = []
    try:
        surveys = services.open_surveys(services.sending_connection(organization))
    except PlaceholderError as error:
        refusal = str(error)
    except SurveyError as error:
        refusal = error.message
    sends = request.method == "POST" and request.POST.get("bulk_action") != (
        SEND_SURVEY_BULK_ACTION.key
    )
    form = SendSurveyForm(
        request.POST if sends else None,
        organization=organization,
        module=module,
        surveys=surveys,
    )
    if sends and not refusal and form.is_valid():
        try:
            batch = services.send_survey(
                organization=organization,
                sender=request.user,  # type: ignore[arg-type]
                module=module,
                records=records,
                survey=form.chosen_survey(),
                template=form.cleaned_data["template"],
                expires_at=form.expires_at(),
            )
        except PlaceholderError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, _("The survey is being sent."))
            return redirect("crm_mail:batch", pk=batch.pk)
    return render(
        request,
        "crm_survey_sending/send_survey.html",
        {
            "form": form,
            "refusal": refusal,
            "has_surveys": bool(surveys),
            "module": module,
            **recipients_context(records, get_language() or "en"),
        },
    )
