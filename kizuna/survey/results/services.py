"""Writes of the results pages: deleting a response (moderation).

Like every write other systems must hear about, it publishes its webhook event in
the same transaction as the change it describes (DESIGN.md §3).
"""

from __future__ import annotations

from django.db import transaction

from kizuna.survey.models import Response
from kizuna.survey.webhooks.services import publish_event, response_payload


def delete_response(*, response: Response) -> None:
    """Delete a response and its answers, and tell subscribers (`response.deleted`).

    The invitation stays completed: deleting is moderation, not an invitation
    to answer again.
    """
    survey = response.survey
    with transaction.atomic():
        payload = response_payload(response)
        publish_event(account=survey.portal.account, event_type="response.deleted", payload=payload)
        response.delete()
