"""What Survey responses add to the CRM core: the Survey section of lead and contact pages
(E1, gone while the integration is not set up: D2) and the API's survey-responses routes."""

from __future__ import annotations

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from kizuna.crm import extensions
from kizuna.crm.integration.models import current_connection_for_page
from kizuna.crm.integration.responses import history
from kizuna.crm.models import Contact, Lead

PANEL_RESPONSES = 10
PANEL_INVITATIONS = 20


def survey_panel(request: HttpRequest, record: Lead | Contact) -> SafeString | None:
    """The Survey section: invitations and responses with their answers, newest first."""
    if current_connection_for_page(request, record.organization_id) is None:
        return None
    module = "leads" if isinstance(record, Lead) else "contacts"
    lead_ids = history.converted_lead_ids(record)
    invitations = list(history.invitations_of(record, lead_ids=lead_ids)[: PANEL_INVITATIONS + 1])
    responses = list(history.responses_of(record, lead_ids=lead_ids)[: PANEL_RESPONSES + 1])
    return render_to_string(
        "crm_survey_responses/panel.html",
        {
            "module": module,
            "record": record,
            "invitations": [
                history.rendered_invitation(invitation)
                for invitation in invitations[:PANEL_INVITATIONS]
            ],
            "more_invitations": len(invitations) > PANEL_INVITATIONS,
            "responses": [
                history.rendered_response(response, module=module)
                for response in responses[:PANEL_RESPONSES]
            ],
            "more_responses": len(responses) > PANEL_RESPONSES,
        },
        request=request,
    )


_api_added = False


def register() -> None:
    global _api_added
    extensions.register_detail_panel(survey_panel)
    if not _api_added:
        from kizuna.crm.api.api import api
        from kizuna.crm.integration.responses.api import router

        api.add_router("", router)
        _api_added = True
