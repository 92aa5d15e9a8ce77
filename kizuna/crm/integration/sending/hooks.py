"""What survey sending adds to CRM mail and to the core CRM pages, registered in ready()."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from django.core.cache import cache
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import format_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from kizuna.crm import extensions as crm_extensions
from kizuna.crm.access import current_membership
from kizuna.crm.integration.client import SurveyError
from kizuna.crm.integration.models import current_connection, current_connection_for_page
from kizuna.crm.integration.sending import services
from kizuna.crm.mail import extensions as mail_extensions
from kizuna.crm.models import Contact, Lead

logger = logging.getLogger(__name__)

BUTTON_KEY = "survey-link"
SURVEYS_CACHE_SECONDS = 20
FAILURE_CACHE_SECONDS = 10


def survey_link_insertions(
    context: mail_extensions.EditorContext,
) -> list[mail_extensions.Insertion]:
    """The open surveys of the integration's portals; none (no button, D3) unless enabled."""
    connection = current_connection(context.organization)
    if connection is None or not connection.is_enabled:
        return []
    # Each editor page would wait on the Survey service: keep its answer (or its failure)
    # briefly. A survey closed meanwhile is still refused when the email is sent.
    key = f"crm_survey_sending:open_surveys:{connection.intake_token}"
    surveys: list[tuple[int, str]] | None = cache.get(key)
    if surveys is None:
        try:
            surveys = [(survey.id, survey.title) for survey in services.open_surveys(connection)]
        except SurveyError as error:
            # The editor still works; the links can be inserted once the service answers.
            logger.warning("Cannot list the surveys for the editor: %s", error)
            cache.set(key, [], FAILURE_CACHE_SECONDS)
            return []
        cache.set(key, surveys, SURVEYS_CACHE_SECONDS)
    return [
        mail_extensions.Insertion(label=title, text=services.placeholder(survey_id))
        for survey_id, title in surveys
    ]


SURVEY_LINK_HELP = format_lazy(
    gettext_lazy(
        "Each recipient gets a survey link of their own; it works for {days} days from "
        "sending, or until the survey is closed."
    ),
    days=services.DEFAULT_EXPIRY_DAYS,
)


def send_survey_action(request: HttpRequest, record: Lead | Contact) -> SafeString | None:
    """ "Send survey" on a lead or contact page while the integration is set up."""
    if current_connection_for_page(request, record.organization_id) is None:
        return None
    module = "leads" if isinstance(record, Lead) else "contacts"
    query = urlencode({"module": module, "ids": record.pk})
    return format_html(
        '<a class="button" href="{}?{}">{}</a>',
        reverse("crm_survey_sending:send"),
        query,
        _("Send survey"),
    )


def _lists_may_send_survey(request: HttpRequest, module: str) -> bool:
    return current_connection(current_membership(request).organization_id) is not None


SEND_SURVEY_BULK_ACTION = crm_extensions.BulkAction(
    key="send_survey",
    label=gettext_lazy("Send survey"),
    url_name="crm_survey_sending:send",
    is_available=_lists_may_send_survey,
)


def register() -> None:
    mail_extensions.register_editor_button(
        BUTTON_KEY,
        label=gettext_lazy("Insert survey link"),
        insertions=survey_link_insertions,
        help=SURVEY_LINK_HELP,
    )
    mail_extensions.register_placeholder_namespace(
        services.NAMESPACE,
        resolve=services.example_survey_link,
        prepare=services.prepare_survey_links,
        describe=services.describe_survey_link,
    )
    crm_extensions.register_detail_action(send_survey_action)
    crm_extensions.register_bulk_action(SEND_SURVEY_BULK_ACTION)
