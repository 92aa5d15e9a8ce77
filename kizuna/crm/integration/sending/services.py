"""Sending surveys by CRM mail (E2, E3): personal survey links made per batch.

A template or an email says where a link goes with the placeholder `{{ survey.<id> }}`
(the survey's id at the Survey service). When the email is sent, the mail app asks
prepare_survey_links() once per part of up to 1,000 recipients (crm/mail/extensions.py):
it checks that the integration is enabled and the survey open and ours, has the Survey
service create one invitation per recipient in one API call, keeps the CRM's copy of
each (SurveyInvitation) and hands back each recipient's own link (/s/i/<token>/). The
recipient reference names this connection and the record, so the response finds its
way back to this organization only. A retried part creates nothing twice: the Survey
API answers an invited (survey, reference) with its existing invitation.

Anything that stops working links from being made raises PlaceholderError with the
reason in the sender's language: the send is refused before any email leaves.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import escape
from django.utils.translation import gettext as _

from kizuna.crm.integration import client
from kizuna.crm.integration.client import (
    ClientErrorCode,
    Credentials,
    InvitationRequest,
    SurveyError,
    SurveyInfo,
)
from kizuna.crm.integration.models import (
    Connection,
    ConnectionState,
    SurveyInvitation,
    current_connection,
)
from kizuna.crm.integration.services import call_survey
from kizuna.crm.mail import services as mail_services
from kizuna.crm.mail.extensions import MergeContext, PlaceholderError, PrepareContext
from kizuna.crm.mail.models import EmailTemplate, SendBatch
from kizuna.crm.models import Contact, Lead, Organization
from kizuna.identity.models import User
from kizuna.lib.api_errors import ErrorCode

NAMESPACE = "survey"
_SURVEY_ID = re.compile(r"^[0-9]{1,18}$")
_ANY_SURVEY_PLACEHOLDER = re.compile(r"\{\{\s*survey\.[A-Za-z0-9_\-]+\s*\}\}")
# Survey service failures that may go away: a part prepared by the worker is retried.
TEMPORARY_CODES = frozenset(
    {
        ClientErrorCode.UNREACHABLE,
        ClientErrorCode.TIMEOUT,
        ClientErrorCode.SERVER_ERROR,
        ErrorCode.THROTTLED,
    }
)
T = TypeVar("T")


def placeholder(survey_id: int) -> str:
    """What "Insert survey link" inserts for a survey."""
    return f"{{{{ {NAMESPACE}.{survey_id} }}}}"


# Which connection, which surveys -------------------------------------------------------


def sending_connection(organization: Organization) -> Connection:
    """The organization's enabled connection; PlaceholderError saying why sending is refused."""
    connection = current_connection(organization)
    if connection is None:
        raise PlaceholderError(
            _(
                "The Survey integration is disabled, so survey links cannot be sent. "
                "Nothing was sent. Remove the survey link from the email, or ask an "
                "administrator to set up the integration again."
            )
        )
    if connection.state == ConnectionState.NEEDS_RECONNECTION:
        # Temporary: a send waiting in the worker goes on once an administrator reconnects.
        raise PlaceholderError(
            _(
                "The Survey integration needs to be reconnected: its SC key was regenerated "
                "in Survey. Survey links cannot be sent until an administrator enters the new "
                "key in Settings > Extensions & APIs > Survey. Nothing was sent."
            ),
            temporary=True,
        )
    return connection


def _call(connection: Connection, call: Callable[[Credentials], T]) -> T:
    """A call to the Survey service whose failure refuses the send, with the reason."""
    try:
        return call_survey(connection, call)
    except SurveyError as error:
        temporary = error.code in TEMPORARY_CODES or error.is_credential_error
        raise PlaceholderError(
            _("Survey links could not be made, so nothing was sent: %(reason)s")
            % {"reason": error.message},
            temporary=temporary,
        ) from error


def _in_use(connection: Connection, survey: SurveyInfo) -> bool:
    return connection.uses_all_portals or survey.portal in connection.portal_ids()


def open_surveys(connection: Connection) -> list[SurveyInfo]:
    """The open surveys of the portals the integration uses (SurveyError when unreachable)."""
    surveys = call_survey(connection, client.list_surveys)
    return [survey for survey in surveys if survey.is_open and _in_use(connection, survey)]


def _sendable_surveys(connection: Connection, keys: frozenset[str]) -> dict[int, SurveyInfo]:
    """The surveys named by the placeholders' keys, each checked to take responses."""
    wanted = []
    for key in sorted(keys):
        if not _SURVEY_ID.match(key):
            raise PlaceholderError(
                _("“%(placeholder)s” names no survey. Use “Insert survey link” to insert a link.")
                % {"placeholder": f"{{{{ {NAMESPACE}.{key} }}}}"}
            )
        wanted.append(int(key))
    surveys = {survey.id: survey for survey in _call(connection, client.list_surveys)}
    found = {}
    for survey_id in wanted:
        survey = surveys.get(survey_id)
        if survey is None or not _in_use(connection, survey):
            raise PlaceholderError(
                _(
                    "The survey of the link %(placeholder)s is not a survey of the portals "
                    "the Survey integration uses (it may have been deleted). Nothing was sent. "
                    "Insert the link again with “Insert survey link”."
                )
                % {"placeholder": placeholder(survey_id)}
            )
        if not survey.is_open:
            raise PlaceholderError(
                _(
                    "The survey “%(title)s” is closed and accepts no responses, so its links "
                    "would not work. Nothing was sent. Open it again in Survey, or choose "
                    "another survey."
                )
                % {"title": survey.title}
            )
        found[survey_id] = survey
    return found


# Making the links ------------------------------------------------------------------------


def _expiry(options: Mapping[str, Any]) -> datetime.datetime | None:
    value = options.get("expires_at")
    return parse_datetime(value) if isinstance(value, str) and value else None


def _record_fields(record: Lead | Contact) -> dict[str, Any]:
    return {"lead": record} if isinstance(record, Lead) else {"contact": record}


def prepare_survey_links(
    context: PrepareContext, records: Sequence[Lead | Contact]
) -> dict[int, dict[str, str]]:
    """Each recipient's own link to each survey named in the message, one API call per
    survey for these (at most 1,000) recipients; {record pk: {survey id: link}}."""
    connection = sending_connection(context.organization)
    surveys = _sendable_surveys(connection, context.keys)
    expires_at = _expiry(context.options)
    links: dict[int, dict[str, str]] = {record.pk: {} for record in records}
    for survey_id, survey in surveys.items():
        by_reference = {connection.recipient_reference(record): record for record in records}
        requests = [
            InvitationRequest(
                recipient_reference=reference,
                email=record.email,
                name=record.display_name(context.language)[:200],
                expires_at=expires_at,
            )
            for reference, record in by_reference.items()
        ]
        invitations = []
        for start in range(0, len(requests), client.MAX_INVITATIONS_PER_CALL):
            part = requests[start : start + client.MAX_INVITATIONS_PER_CALL]
            invitations += _call(
                connection,
                functools.partial(client.create_invitations, survey_id=survey_id, invitations=part),
            )
        if {invitation.recipient_reference for invitation in invitations} != set(by_reference):
            raise PlaceholderError(
                _("Survey links could not be made, so nothing was sent: %(reason)s")
                % {"reason": client.MESSAGES[ClientErrorCode.BAD_ANSWER]},
                temporary=True,
            )
        _keep_invitations(connection, survey, invitations, by_reference)
        for invitation in invitations:
            if invitation.state == "expired":
                raise PlaceholderError(
                    _("The Survey service gave an expired link for “%(title)s”. Nothing was sent.")
                    % {"title": survey.title}
                )
            record = by_reference[invitation.recipient_reference]
            links[record.pk][str(survey_id)] = invitation.link
    return links


def _keep_invitations(
    connection: Connection,
    survey: SurveyInfo,
    invitations: Sequence[client.Invitation],
    by_reference: Mapping[str, Lead | Contact],
) -> None:
    """The CRM's copy of each invitation (one per connection, survey and recipient)."""
    now = timezone.now()
    with transaction.atomic():
        SurveyInvitation.objects.bulk_create(
            [
                SurveyInvitation(
                    connection=connection,
                    organization_id=connection.organization_id,
                    survey_id=survey.id,
                    survey_title=survey.title[:300],
                    recipient_reference=invitation.recipient_reference,
                    email=invitation.email,
                    survey_token=invitation.token,
                    link=invitation.link,
                    created_at=invitation.created_at,
                    sent_at=now,
                    expires_at=invitation.expires_at,
                    opened_at=invitation.opened_at,
                    completed_at=invitation.completed_at,
                    **_record_fields(by_reference[invitation.recipient_reference]),
                )
                for invitation in invitations
            ],
            update_conflicts=True,
            unique_fields=["connection", "survey_id", "recipient_reference"],
            update_fields=[
                "survey_title",
                "email",
                "survey_token",
                "link",
                "sent_at",
                "expires_at",
            ],
            batch_size=500,
        )


def example_survey_link(context: MergeContext, key: str) -> str:
    """The template preview's link: an example, nothing is created."""
    return f"{settings.SURVEY_URL}/s/i/example-{key}/"


# Send survey (lead and contact pages, lists) ----------------------------------------------


def _message_with_link(template: EmailTemplate | None, survey: SurveyInfo) -> tuple[str, str, str]:
    """Subject, HTML and text of a survey email: the template's with its survey links
    pointing at `survey` (the link added at the end when it has none), or a short default."""
    link = placeholder(survey.id)
    if template is None:
        subject = survey.title
        text = _("Please answer our survey “%(title)s”:") % {"title": survey.title}
        return subject, "", f"{text}\n\n{link}\n"
    subject = _ANY_SURVEY_PLACEHOLDER.sub(link, template.subject)
    body_html = _ANY_SURVEY_PLACEHOLDER.sub(link, template.body_html)
    body_text = _ANY_SURVEY_PLACEHOLDER.sub(link, template.body_text)
    if link not in f"{subject}{body_html}{body_text}":
        if body_html.strip():
            body_html += f'\n<p><a href="{link}">{escape(survey.title)}</a></p>'
        if body_text.strip():
            body_text += f"\n\n{link}\n"
    return subject, body_html, body_text


def send_survey(
    *,
    organization: Organization,
    sender: User,
    module: str,
    records: Sequence[Lead | Contact],
    survey: SurveyInfo,
    template: EmailTemplate | None,
    expires_at: datetime.datetime | None,
) -> SendBatch:
    """Email `survey` to the records with `template` (E2): each gets a link of their own.

    PlaceholderError when no working links can be made: nothing is queued then.
    """
    subject, body_html, body_text = _message_with_link(template, survey)
    return mail_services.queue_emails(
        organization=organization,
        sender=sender,
        module=module,
        records=records,
        subject=subject,
        body_html=body_html,
        body_text=body_text,
        template=template,
        extension_options={NAMESPACE: {"expires_at": expires_at.isoformat() if expires_at else ""}},
    )
