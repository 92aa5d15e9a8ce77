"""Every change of the Survey integration's connection starts here: enabling (S9), disabling
(D1-D6: the cut-off), reconnecting with a new SC key (K2), and calling the Survey service on
behalf of a connection (a revoked key there puts the connection in "needs reconnection")."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from kizuna.crm.audit.models import AuditAction
from kizuna.crm.audit.services import record as record_audit
from kizuna.crm.integration import client
from kizuna.crm.integration.client import Credentials, MemberRole, SurveyError
from kizuna.crm.integration.models import (
    Connection,
    ConnectionMethod,
    ConnectionState,
    Reconciliation,
    ReconciliationKind,
    new_intake_token,
)
from kizuna.crm.models import Organization
from kizuna.identity.models import User
from kizuna.lib import crypto
from kizuna.lib.api_errors import ErrorCode
from kizuna.work.leases import WorkStatus

logger = logging.getLogger(__name__)
T = TypeVar("T")


class IntegrationError(Exception):
    """A change of the integration that cannot be made; `message` says why, for people."""

    def __init__(self, code: str, message: object) -> None:
        super().__init__(str(message))
        self.code = code
        self.message = str(message)


def _already_set_up() -> IntegrationError:
    return IntegrationError(
        "already_set_up",
        _("The Survey integration is already set up for this organization."),
    )


def enable(
    *,
    organization: Organization,
    by: User,
    method: ConnectionMethod,
    credentials: Credentials,
    uses_all_portals: bool,
    portals: Sequence[client.Portal] = (),
) -> Connection:
    """Enable the integration (S9) in one step that never leaves it half enabled.

    The key is checked and the webhook endpoint created at the Survey service first;
    then the connection (key and signing secret encrypted) and the audit entry are
    stored in one transaction. When any of it fails nothing is enabled, the endpoint
    is deleted again (or, when even that fails, left pointing at an intake address no
    connection owns, which answers 404) and SurveyError or IntegrationError says why.
    """
    if not uses_all_portals and not portals:
        raise IntegrationError(
            "no_portals", _("Use all surveys of this account, or choose at least one portal.")
        )
    if Connection.objects.of(organization).current().exists():
        raise _already_set_up()
    account = client.get_account(credentials)
    connection = Connection(
        organization=organization,
        state=ConnectionState.ENABLED,
        method=method,
        survey_account_id=account.id,
        survey_account_name=account.name,
        sc_email=account.email,
        sc_key_encrypted=crypto.encrypt_secret(credentials.key),
        uses_all_portals=uses_all_portals,
        portals=[] if uses_all_portals else [{"id": p.id, "name": p.name} for p in portals],
        intake_token=new_intake_token(),
        enabled_by=by,
    )
    if not uses_all_portals:
        _check_portals(credentials, [p.id for p in portals])
    endpoint = _create_endpoint(credentials, url=connection.intake_url())
    try:
        with transaction.atomic():
            connection.webhook_endpoint_id = endpoint.id
            connection.webhook_secret_encrypted = crypto.encrypt_secret(endpoint.secret)
            connection.enabled_at = timezone.now()
            connection.save()
            Reconciliation.objects.create(
                connection=connection,
                kind=ReconciliationKind.PERIODIC,
                next_attempt_at=connection.enabled_at + Reconciliation.every,
            )
            record_audit(
                organization=organization,
                actor=by,
                action=AuditAction.INTEGRATION_ENABLED,
                data={
                    "account": account.name,
                    "email": account.email,
                    "method": str(method),
                },
            )
    except IntegrityError:
        # Another administrator enabled it at the same moment: theirs stands, ours goes.
        _delete_endpoint_quietly(credentials, endpoint.id)
        raise _already_set_up() from None
    except BaseException:
        _delete_endpoint_quietly(credentials, endpoint.id)
        raise
    return connection


def _check_portals(credentials: Credentials, portal_ids: Sequence[int]) -> None:
    known = {portal.id for portal in client.list_portals(credentials)}
    if not set(portal_ids) <= known:
        raise IntegrationError(
            "unknown_portal",
            _("A chosen portal no longer exists in the Survey account. Choose again."),
        )


def _create_endpoint(credentials: Credentials, *, url: str) -> client.WebhookEndpoint:
    try:
        return client.create_webhook_endpoint(
            credentials, url=url, description=str(_("Kizuna CRM integration"))
        )
    except SurveyError as error:
        if error.code in (client.ClientErrorCode.TIMEOUT, client.ClientErrorCode.UNREACHABLE):
            # The Survey service may have created it before the answer was lost.
            _delete_endpoints_at(credentials, url)
        raise


def _delete_endpoints_at(credentials: Credentials, url: str) -> None:
    try:
        for endpoint in client.list_webhook_endpoints(credentials):
            if endpoint.url == url:
                _delete_endpoint_quietly(credentials, endpoint.id)
    except SurveyError as error:
        logger.warning("Could not look for a webhook endpoint left at %s: %s", url, error)


def _delete_endpoint_quietly(credentials: Credentials, endpoint_id: int) -> None:
    try:
        client.delete_webhook_endpoint(credentials, endpoint_id=endpoint_id)
    except SurveyError as error:
        if error.code != ErrorCode.NOT_FOUND:
            logger.warning("Could not delete webhook endpoint %s: %s", endpoint_id, error)


def disable(*, organization: Organization, by: User) -> Connection:
    """Disable the integration now (D1-D6): the moment is the cut-off of D6.

    The Survey service is not called: nothing there changes (D1, D5). Responses
    submitted before the cut-off are still recorded when they arrive; the final
    reconciliation and the deletion of the webhook endpoint are leased work that
    follows.
    """
    with transaction.atomic():
        connection = Connection.objects.of(organization).current().select_for_update().first()
        if connection is None:
            raise IntegrationError(
                "not_set_up", _("The Survey integration is not set up for this organization.")
            )
        connection.state = ConnectionState.DISABLED
        connection.disabled_at = timezone.now()
        connection.disabled_by = by
        connection.save(update_fields=["state", "disabled_at", "disabled_by"])
        # The final pull up to the cut-off, then the endpoint's deletion: the worker's job,
        # so that disabling never waits on the Survey service.
        Reconciliation.objects.create(
            connection=connection,
            kind=ReconciliationKind.FINAL,
            requested_by=by,
            next_attempt_at=connection.disabled_at + Reconciliation.settle_delay,
        )
        record_audit(
            organization=organization,
            actor=by,
            action=AuditAction.INTEGRATION_DISABLED,
            data={"account": connection.survey_account_name},
        )
    return connection


def mark_needs_reconnection(*, connection: Connection) -> None:
    """The stored key stopped working (K2): sending waits for a new key; intake goes on."""
    now = timezone.now()
    Connection.objects.filter(pk=connection.pk, state=ConnectionState.ENABLED).update(
        state=ConnectionState.NEEDS_RECONNECTION, needs_reconnection_since=now
    )
    connection.refresh_from_db(fields=["state", "needs_reconnection_since"])


def reconnect(
    *, organization: Organization, by: User, key: str, email: str | None = None
) -> Connection:
    """Use a new SC key (K2) of the same Survey account; the connection is enabled again.

    SurveyError when the Survey service refuses the key; IntegrationError
    `other_account` when it belongs to another account. Nothing recorded changes.
    """
    connection = Connection.objects.of(organization).current().first()
    if connection is None:
        raise IntegrationError(
            "not_set_up", _("The Survey integration is not set up for this organization.")
        )
    credentials = Credentials(email=(email or connection.sc_email).strip(), key=key.strip())
    account = _account_of_connection(connection, credentials)
    with transaction.atomic():
        locked = Connection.objects.select_for_update().get(pk=connection.pk)
        if not locked.is_current:
            raise IntegrationError(
                "not_set_up", _("The Survey integration was disabled meanwhile.")
            )
        locked.sc_email = account.email
        locked.sc_key_encrypted = crypto.encrypt_secret(credentials.key)
        locked.survey_account_name = account.name
        locked.state = ConnectionState.ENABLED
        locked.needs_reconnection_since = None
        locked.reconnected_at = timezone.now()
        locked.save(
            update_fields=[
                "sc_email",
                "sc_key_encrypted",
                "survey_account_name",
                "state",
                "needs_reconnection_since",
                "reconnected_at",
            ]
        )
        record_audit(
            organization=organization,
            actor=by,
            action=AuditAction.INTEGRATION_RECONNECTED,
            data={"account": account.name, "email": account.email},
        )
    return locked


def _account_of_connection(connection: Connection, credentials: Credentials) -> client.Account:
    """The Survey account of `credentials`; IntegrationError unless it is the connection's."""
    account = client.get_account(credentials)
    if account.id != connection.survey_account_id:
        raise IntegrationError(
            "other_account",
            _(
                "This SC key belongs to the Survey account “%(other)s”, not to “%(account)s” "
                "that the integration uses. Use a key of “%(account)s”, or disable the "
                "integration and set it up again."
            )
            % {"other": account.name, "account": connection.survey_account_name},
        )
    return account


def stopped_disablings(organization: Organization) -> list[tuple[Connection, Reconciliation]]:
    """The organization's disabled connections whose final work stopped before its end, each
    with that work, newest first. Enabling again leaves them as they are: their cut-off,
    their last check for responses and their webhook endpoint are still theirs to finish."""
    candidates = (
        Connection.objects.of(organization)
        .filter(
            state=ConnectionState.DISABLED,
            finished_without_survey_at__isnull=True,
            webhook_endpoint_deleted_at__isnull=True,
        )
        .order_by("-disabled_at", "-pk")
    )
    return [
        (connection, row)
        for connection in candidates
        if (row := connection.stopped_final_work()) is not None
    ]


def _stopped_final_work(
    organization: Organization, connection_id: int | None
) -> tuple[Connection, Reconciliation]:
    """The stopped final work of the disabled connection `connection_id` (the newest one
    when None); IntegrationError `nothing_to_finish` when it has none."""
    for connection, row in stopped_disablings(organization):
        if connection_id is None or connection.pk == connection_id:
            return connection, row
    raise IntegrationError(
        "nothing_to_finish", _("Disabling the Survey integration has nothing left to finish.")
    )


def finish_disabling(
    *,
    organization: Organization,
    by: User,
    key: str = "",
    email: str | None = None,
    connection_id: int | None = None,
) -> Connection:
    """Run the final work after disabling again, once it stopped (D6): with a new SC key of
    the same Survey account when the stored one was refused (K2 while disabling), else
    with the stored key. The connection stays disabled; the cut-off does not move, also when
    the integration was enabled again meanwhile (a connection of its own)."""
    connection, row = _stopped_final_work(organization, connection_id)
    account: client.Account | None = None
    if key.strip():
        credentials = Credentials(email=(email or connection.sc_email).strip(), key=key.strip())
        account = _account_of_connection(connection, credentials)
    with transaction.atomic():
        now = timezone.now()
        if account is not None:
            connection.sc_email = account.email
            connection.sc_key_encrypted = crypto.encrypt_secret(key.strip())
            connection.reconnected_at = now
            connection.save(update_fields=["sc_email", "sc_key_encrypted", "reconnected_at"])
            record_audit(
                organization=organization,
                actor=by,
                action=AuditAction.INTEGRATION_RECONNECTED,
                data={"account": account.name, "email": account.email, "to_finish": True},
            )
        Reconciliation.objects.filter(pk=row.pk, status=WorkStatus.FAILED).update(
            status=WorkStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            finished_at=None,
            leased_until=None,
        )
    return connection


def finish_without_survey(
    *, organization: Organization, by: User, connection_id: int | None = None
) -> Connection:
    """End the stopped final work without the Survey service (D1-D6 still hold): what the
    CRM recorded stays; responses submitted before the cut-off that still arrive are
    recorded, later ones never; the webhook endpoint stays at the Survey service, where
    its administrators can delete it."""
    connection, _row = _stopped_final_work(organization, connection_id)
    with transaction.atomic():
        connection.finished_without_survey_at = timezone.now()
        connection.save(update_fields=["finished_without_survey_at"])
        record_audit(
            organization=organization,
            actor=by,
            action=AuditAction.INTEGRATION_FINISHED_WITHOUT_SURVEY,
            data={"account": connection.survey_account_name},
        )
    return connection


def call_survey(connection: Connection, call: Callable[[Credentials], T]) -> T:
    """`call` with the connection's credentials; a key the Survey service no longer accepts
    (revoked, its owner no longer an administrator) marks the connection as needing
    reconnection before the SurveyError goes on to the caller."""
    try:
        return call(connection.credentials())
    except SurveyError as error:
        if error.is_credential_error:
            mark_needs_reconnection(connection=connection)
        raise


def invite_survey_users(
    *, connection: Connection, administrators: Sequence[str], members: Sequence[str] = ()
) -> list[client.MemberInvitationResult]:
    """Invite CRM users who are not Survey users yet to the connection's account (S6, S8):
    each gets an email and joins on accepting it.

    CRM administrators join as Survey administrators: they run the integration, and after
    a key is regenerated (K2) only a Survey administrator can see the new SC key to
    reconnect with (K1). Other users join as members. Roles of people who are already
    in the account are the Survey administrators' business and never changed from here.
    """
    results: list[client.MemberInvitationResult] = []
    for role, emails in ((MemberRole.ADMINISTRATOR, administrators), (MemberRole.MEMBER, members)):
        if emails:
            invite = functools.partial(client.invite_members, emails=emails, role=role)
            results += call_survey(connection, invite)
    return results
