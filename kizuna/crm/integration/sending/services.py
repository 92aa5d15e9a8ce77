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
reason in the sender's language: the send is refused before any email leaves. Invitations
that the Survey service (which just listed the surveys) does not make in time are not a
refusal: the worker makes them (PlaceholderError background), and the sender follows the
progress on the batch page.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar

from django.conf import settings
from django.db import connections, router, transaction
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
from kizuna.crm.mail.extensions import (
    MergeContext,
    PlaceholderError,
    PrepareContext,
    RecipientRefusal,
)
from kizuna.crm.mail.models import EmailTemplate, SendBatch
from kizuna.crm.models import Contact, Lead, Organization
from kizuna.identity.models import User
from kizuna.lib.api_errors import ErrorCode

NAMESPACE = "survey"
# Every survey link sent by CRM mail expires (as Salesforce's autoExpiryDays and
# Qualtrics' link expiration do): a link forwarded or found in an old mailbox must not
# answer as its recipient for ever. "Send survey" asks for the validity; a link inserted
# with "Insert survey link" works for DEFAULT_EXPIRY_DAYS from when it is made. The
# Survey service also refuses every link once the survey is closed.
DEFAULT_EXPIRY_DAYS = 30
MAX_EXPIRY_DAYS = 365
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
                "The emails waiting for survey links have not been sent. Remove the survey "
                "link from the email, or ask an administrator to set up the integration again."
            )
        )
    if connection.state == ConnectionState.NEEDS_RECONNECTION:
        # Temporary: a send waiting in the worker goes on once an administrator reconnects.
        raise PlaceholderError(
            _(
                "The Survey integration needs to be reconnected: its SC key was regenerated "
                "in Survey. Survey links cannot be sent until an administrator enters the new "
                "key in Settings > Extensions & APIs > Survey. The emails waiting for survey "
                "links have not been sent."
            ),
            temporary=True,
        )
    return connection


def _call(
    connection: Connection, call: Callable[[Credentials], T], *, slow_is_refusal: bool = True
) -> T:
    """A call to the Survey service whose failure refuses the send, with the reason.

    slow_is_refusal False: a call that does not answer in time leaves the work to the
    worker instead (PlaceholderError background), for a service that answered a moment ago.
    """
    try:
        return call_survey(connection, call)
    except SurveyError as error:
        temporary = error.code in TEMPORARY_CODES or error.is_credential_error
        raise PlaceholderError(
            _(
                "Survey links could not be made, so the emails waiting for them have not been "
                "sent: %(reason)s"
            )
            % {"reason": error.message},
            temporary=temporary,
            background=not slow_is_refusal and error.code == ClientErrorCode.TIMEOUT,
        ) from error


def _in_use(connection: Connection, survey: SurveyInfo) -> bool:
    return connection.uses_all_portals or survey.portal in connection.portal_ids()


# The survey lists asked for in this request, by connection (surveys_listed_once()).
_listed: ContextVar[dict[int, list[SurveyInfo]] | None] = ContextVar("listed", default=None)


@contextlib.contextmanager
def surveys_listed_once() -> Iterator[None]:
    """Within it the Survey service is asked for the survey list once per connection: the
    send form lists the surveys, then sending checks the chosen one against the same list.
    A list that could not be had is asked for again. The worker, outside it, always asks."""
    token = _listed.set({})
    try:
        yield
    finally:
        _listed.reset(token)


def _list_surveys(
    connection: Connection,
    call: Callable[[Connection, Callable[[Credentials], list[SurveyInfo]]], list[SurveyInfo]],
) -> list[SurveyInfo]:
    listed = _listed.get()
    if listed is not None and connection.pk in listed:
        return listed[connection.pk]
    surveys = call(connection, client.list_surveys)
    if listed is not None:
        listed[connection.pk] = surveys
    return surveys


def open_surveys(connection: Connection) -> list[SurveyInfo]:
    """The open surveys of the portals the integration uses (SurveyError when unreachable)."""
    surveys = _list_surveys(connection, call_survey)
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
    surveys = {survey.id: survey for survey in _list_surveys(connection, _call)}
    found = {}
    for survey_id in wanted:
        survey = surveys.get(survey_id)
        if survey is None or not _in_use(connection, survey):
            raise PlaceholderError(
                _(
                    "The survey of the link %(placeholder)s is not a survey of the portals "
                    "the Survey integration uses (it may have been deleted). The emails "
                    "waiting for survey links have not been sent. Insert the link again with "
                    "“Insert survey link”."
                )
                % {"placeholder": placeholder(survey_id)}
            )
        if not survey.is_open:
            raise PlaceholderError(
                _(
                    "The survey “%(title)s” is closed and accepts no responses, so its links "
                    "would not work. The emails waiting for survey links have not been sent. "
                    "Open it again in Survey, or choose another survey."
                )
                % {"title": survey.title}
            )
        found[survey_id] = survey
    return found


# Making the links ------------------------------------------------------------------------


def _expiry(options: Mapping[str, Any]) -> datetime.datetime:
    """The links' expiry the sender chose, else DEFAULT_EXPIRY_DAYS from now."""
    value = options.get("expires_at")
    chosen = parse_datetime(value) if isinstance(value, str) and value else None
    return chosen or timezone.now() + datetime.timedelta(days=DEFAULT_EXPIRY_DAYS)


_ITEM_FIELD = re.compile(r"^invitations\.([0-9]+)\.")


def _invite(
    connection: Connection, survey_id: int, requests: Sequence[InvitationRequest]
) -> tuple[list[client.Invitation], dict[str, str]]:
    """Invitations for `requests` (one call), and the references the Survey service
    refused by name ({reference: why}): those are left out and the others asked again."""
    # The Survey service listed the surveys a moment ago: a thousand invitations that take
    # longer than the time limit on a loaded machine are not a refusal. The worker makes
    # them; they are idempotent there, so the call given up on here creates nothing twice.
    try:
        return _call(
            connection,
            functools.partial(client.create_invitations, survey_id=survey_id, invitations=requests),
            slow_is_refusal=False,
        ), {}
    except PlaceholderError as error:
        cause = error.__cause__
        if not isinstance(cause, SurveyError) or cause.code != ErrorCode.INVALID:
            raise
        refused: dict[str, str] = {}
        for field in cause.fields:
            match = _ITEM_FIELD.match(field)
            if match is None or int(match.group(1)) >= len(requests):
                raise  # a refusal of the whole batch, not of some recipients
            request = requests[int(match.group(1))]
            # In the sender's words (the Survey service answers in its own language).
            if field.endswith(".email"):
                why = _("the Survey service does not accept the email address “%(email)s”") % {
                    "email": request.email
                }
            elif field.endswith(".name"):
                why = _("the Survey service does not accept the name “%(name)s”") % {
                    "name": request.name
                }
            else:
                why = _("the Survey service refused this recipient")
            refused.setdefault(request.recipient_reference, why)
    rest = [request for request in requests if request.recipient_reference not in refused]
    made = (
        _call(
            connection,
            functools.partial(client.create_invitations, survey_id=survey_id, invitations=rest),
            slow_is_refusal=False,
        )
        if rest
        else []
    )
    return made, refused


def _refusal_of(invitation: client.Invitation, survey: SurveyInfo) -> str:
    """Why this recipient gets no link to `survey` (a link they cannot use), or ""."""
    if invitation.state == "completed":
        return _("already answered the survey “%(title)s”") % {"title": survey.title}
    if invitation.state == "expired":
        return _("the Survey service gave an expired link for “%(title)s”") % {
            "title": survey.title
        }
    return ""


def prepare_survey_links(
    context: PrepareContext, records: Sequence[Lead | Contact]
) -> dict[int, dict[str, str] | RecipientRefusal]:
    """Each recipient's own link to each survey named in the message, one API call per
    survey for these (at most 1,000) recipients; {record pk: {survey id: link}}.

    A recipient the Survey service refuses by name (an address it does not take), or
    whose link could not be used (they already answered), gets a RecipientRefusal
    saying why; the others get their links."""
    connection = sending_connection(context.organization)
    surveys = _sendable_surveys(connection, context.keys)
    expires_at = _expiry(context.options)
    links: dict[int, dict[str, str]] = {record.pk: {} for record in records}
    refusals: dict[int, list[str]] = {}
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
        invitations: list[client.Invitation] = []
        refused: dict[str, str] = {}
        for start in range(0, len(requests), client.MAX_INVITATIONS_PER_CALL):
            made, refused_here = _invite(
                connection, survey_id, requests[start : start + client.MAX_INVITATIONS_PER_CALL]
            )
            invitations += made
            refused |= refused_here
        if {invitation.recipient_reference for invitation in invitations} | set(refused) != set(
            by_reference
        ):
            raise PlaceholderError(
                _(
                    "Survey links could not be made, so the emails waiting for them have not been "
                    "sent: %(reason)s"
                )
                % {"reason": client.MESSAGES[ClientErrorCode.BAD_ANSWER]},
                temporary=True,
            )
        usable = []
        for invitation in invitations:
            record = by_reference[invitation.recipient_reference]
            if why := _refusal_of(invitation, survey):
                refused[invitation.recipient_reference] = why
            else:
                usable.append(invitation)
                links[record.pk][str(survey_id)] = invitation.link
        _keep_invitations(connection, survey, usable, by_reference)
        for reference, why in refused.items():
            refusals.setdefault(by_reference[reference].pk, []).append(why)
    return {
        pk: RecipientRefusal("; ".join(refusals[pk])) if pk in refusals else values
        for pk, values in links.items()
    }


# The CRM's copy of an invitation, column by column, and what a send sets again for a
# recipient invited before (a retried part, the same survey sent again).
_INVITATION_COLUMNS = (
    "connection_id",
    "organization_id",
    "lead_id",
    "contact_id",
    "survey_id",
    "survey_title",
    "recipient_reference",
    "email",
    "survey_token",
    "link",
    "created_at",
    "sent_at",
    "opened_at",
    "completed_at",
    "expires_at",
)
_ONE_PER_RECIPIENT = ("connection", "survey_id", "recipient_reference")
_SET_AGAIN = ("survey_title", "email", "survey_token", "link", "sent_at", "expires_at")


def _keep_invitations(
    connection: Connection,
    survey: SurveyInfo,
    invitations: Sequence[client.Invitation],
    by_reference: Mapping[str, Lead | Contact],
) -> None:
    """The CRM's copy of each invitation (one per connection, survey and recipient)."""
    rows = _invitation_rows(connection, survey, invitations, by_reference)
    if not rows:
        return
    database = connections[router.db_for_write(SurveyInvitation)]
    with transaction.atomic(using=database.alias):
        if database.vendor != "postgresql":
            SurveyInvitation.objects.bulk_create(
                [
                    SurveyInvitation(**dict(zip(_INVITATION_COLUMNS, row, strict=True)))
                    for row in rows
                ],
                update_conflicts=True,
                unique_fields=list(_ONE_PER_RECIPIENT),
                update_fields=list(_SET_AGAIN),
                batch_size=500,
            )
            return
        # One statement of a column of values each (UNNEST, as bulk_create does), written
        # without model objects and reading nothing back: bulk_create built 1,000 objects,
        # converted each value through its field and read the new ids, about two thirds of
        # the client's CPU for a part's invitations (62-68 ms against 21-25 ms a 1,000).
        with database.cursor() as cursor:
            columns = [list(column) for column in zip(*rows, strict=True)]
            cursor.execute(_upsert_statement(database), columns)


def _invitation_rows(
    connection: Connection,
    survey: SurveyInfo,
    invitations: Sequence[client.Invitation],
    by_reference: Mapping[str, Lead | Contact],
) -> list[tuple[Any, ...]]:
    """Each invitation's values in _INVITATION_COLUMNS' order, sent now."""
    now = timezone.now()
    rows = []
    for invitation in invitations:
        record = by_reference[invitation.recipient_reference]
        is_lead = isinstance(record, Lead)
        rows.append(
            (
                connection.pk,
                connection.organization_id,
                record.pk if is_lead else None,
                None if is_lead else record.pk,
                survey.id,
                survey.title[:300],
                invitation.recipient_reference,
                invitation.email,
                invitation.token,
                invitation.link,
                invitation.created_at,
                now,
                invitation.opened_at,
                invitation.completed_at,
                invitation.expires_at,
            )
        )
    return rows


def _upsert_statement(database: Any) -> str:
    """INSERT ... ON CONFLICT DO UPDATE of SurveyInvitation rows given as one array a column
    (_INVITATION_COLUMNS), on PostgreSQL."""
    quote = database.ops.quote_name
    meta = SurveyInvitation._meta
    fields = {field.attname: field for field in meta.concrete_fields}
    by_name = {field.name: field.column for field in meta.concrete_fields}
    columns = [fields[name] for name in _INVITATION_COLUMNS]
    # An array of the column's type without its length (varchar, not varchar(300)).
    arrays = ", ".join(f"%s::{str(field.db_type(database)).split('(')[0]}[]" for field in columns)
    return (
        f"INSERT INTO {quote(meta.db_table)} "  # noqa: S608
        f"({', '.join(quote(field.column) for field in columns)}) "
        f"SELECT * FROM UNNEST({arrays}) "
        f"ON CONFLICT ({', '.join(quote(by_name[name]) for name in _ONE_PER_RECIPIENT)}) "
        "DO UPDATE SET "
        + ", ".join(
            f"{quote(by_name[name])} = EXCLUDED.{quote(by_name[name])}" for name in _SET_AGAIN
        )
    )


def describe_survey_link(organization_id: int, key: str) -> str:
    """What the lists of sent emails and the timeline show for a survey link: the survey's
    name as it was sent (each recipient's own link is theirs alone, never shown)."""
    if not _SURVEY_ID.match(key):
        return ""
    titles = SurveyInvitation.objects.filter(
        organization_id=organization_id, survey_id=int(key)
    ).values_list("survey_title", flat=True)
    title = next(iter(titles[:1]), "")
    if not title:
        return _("Survey link")
    return _("Survey link: %(title)s") % {"title": title}


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

    expires_at: when the links stop working (None: DEFAULT_EXPIRY_DAYS from sending).
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
