"""What the Survey integration adds to the CRM core pages (through kizuna.crm.extensions)."""

from __future__ import annotations

from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from kizuna.crm import extensions
from kizuna.crm.integration.models import ConnectionState, current_connection
from kizuna.crm.models import Organization


def survey_extension(request: HttpRequest, organization: Organization) -> extensions.Extension:
    """S1, S2: the Survey entry of Settings > Extensions & APIs, with its state."""
    connection = current_connection(organization)
    status = _("Not set up") if connection is None else ConnectionState(connection.state).label
    return extensions.Extension(
        name=_("Survey"),
        description=_(
            "Send surveys to leads and contacts from the CRM and see each response on their page."
        ),
        url=reverse("crm_integration:settings"),
        status=status,
        is_enabled=connection is not None and connection.is_enabled,
    )


def register() -> None:
    extensions.register_extension(survey_extension)
