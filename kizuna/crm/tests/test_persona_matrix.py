"""Every CRM page, for every persona: Ada (administrator of Kizuna Demo), Bob (standard user
there), Charlie (administrator of Sato Trading: objects of Kizuna Demo are 404 to him, its
pages show his own organization) and a signed-out visitor.

MATRIX lists every URL name of the `crm` namespace and of every `crm_*` one (mail, imports,
API tokens, audit log, the Survey integration, and whatever app comes next): a route that is
not here fails test_the_matrix_covers_every_crm_page, which says what to add. The REST API
has a matrix of its own (kizuna/crm/api/tests/test_persona_matrix.py). The records,
memberships, invitations, templates, sends, imports and tokens used all belong to Kizuna
Demo and were made by Ada. Kizuna Demo's Survey integration needs reconnecting (K2): its
pages show and no call reaches a Survey service; Sato Trading has none. Write actions are
also tested for their effect (and its absence) in the per-view files.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kizuna.crm import services
from kizuna.crm.api.services import create_api_token
from kizuna.crm.imports.models import ImportJob, ImportStatus
from kizuna.crm.integration.models import (
    Connection,
    ConnectionMethod,
    ConnectionState,
    UnmatchedResponse,
)
from kizuna.crm.mail import services as mail_services
from kizuna.crm.mail.models import OutgoingMessage
from kizuna.crm.models import Contact, Lead, Membership, Role
from kizuna.testing.matrix import SIGN_IN, coverage_problems, page_routes

pytestmark = pytest.mark.django_db

PERSONAS = ("ada", "bob", "charlie", "anonymous")

# Pages of the current organization: Charlie sees his own.
Expected = dict[str, int | str]
OWN: Expected = {"ada": 200, "bob": 200, "charlie": 200, "anonymous": SIGN_IN}
# A record (or template, send) of Kizuna Demo.
RECORD: Expected = {"ada": 200, "bob": 200, "charlie": 404, "anonymous": SIGN_IN}
# Deleting a record of Kizuna Demo owned by Ada (or nobody): Membership.may_delete.
DELETE: Expected = {"ada": 200, "bob": 403, "charlie": 404, "anonymous": SIGN_IN}
# Administrator pages of the current organization.
ADMIN: Expected = {"ada": 200, "bob": 403, "charlie": 200, "anonymous": SIGN_IN}
# Administrator actions on a membership or invitation of Kizuna Demo.
ADMIN_ACTION: Expected = {"ada": 302, "bob": 403, "charlie": 404, "anonymous": SIGN_IN}
# Something Ada made that only she (or an administrator) may see: an import, an API token.
ADAS: Expected = {"ada": 200, "bob": 404, "charlie": 404, "anonymous": SIGN_IN}
ADAS_ACTION: Expected = {"ada": 302, "bob": 404, "charlie": 404, "anonymous": SIGN_IN}
# An administrator's action on the current organization, done (or nothing to do): a redirect.
ADMIN_REDIRECT: Expected = {"ada": 302, "bob": 403, "charlie": 302, "anonymous": SIGN_IN}
# Everyone signed in lands elsewhere.
REDIRECT: Expected = {"ada": 302, "bob": 302, "charlie": 302, "anonymous": SIGN_IN}
# A public page whose token in the URL is the authority.
PUBLIC: Expected = {"ada": 200, "bob": 200, "charlie": 200, "anonymous": 200}

# name: (method, what the URL needs (comma-separated), data, {persona: status})
MATRIX: dict[str, tuple[str, str, dict[str, Any], Expected]] = {
    "crm:home": ("get", "", {}, OWN),
    "crm:organization-create": ("get", "", {}, OWN),
    "crm:organization-switch": (
        "post", "", {"organization": "{organization}"},
        {"ada": 302, "bob": 302, "charlie": 404, "anonymous": SIGN_IN},
    ),
    "crm:lead-list": ("get", "", {}, OWN),
    "crm:lead-create": ("get", "", {}, OWN),
    "crm:lead-bulk": ("post", "", {"action": "delete", "ids": "{lead}"}, DELETE),
    "crm:lead-detail": ("get", "lead", {}, RECORD),
    "crm:lead-edit": ("get", "lead", {}, RECORD),
    "crm:lead-delete": ("get", "lead", {}, DELETE),
    "crm:lead-convert": ("get", "lead", {}, RECORD),
    "crm:contact-list": ("get", "", {}, OWN),
    "crm:contact-create": ("get", "", {}, OWN),
    "crm:contact-bulk": (
        "post", "", {"action": "owner", "owner": "none", "ids": "{contact}"},
        {"ada": 302, "bob": 302, "charlie": 404, "anonymous": SIGN_IN},
    ),
    "crm:contact-detail": ("get", "contact", {}, RECORD),
    "crm:contact-edit": ("get", "contact", {}, RECORD),
    "crm:contact-delete": ("get", "contact", {}, DELETE),
    "crm:settings": ("get", "", {}, ADMIN),
    "crm:settings-members": ("get", "", {}, ADMIN),
    "crm:settings-extensions": ("get", "", {}, ADMIN),
    "crm:member-invite": (
        "post", "", {"email": "new@example.com", "role": Role.STANDARD},
        {"ada": 302, "bob": 403, "charlie": 302, "anonymous": SIGN_IN},
    ),
    "crm:member-role": ("post", "membership", {"m{membership}-role": Role.STANDARD}, ADMIN_ACTION),
    "crm:member-deactivate": ("post", "membership", {}, ADMIN_ACTION),
    "crm:member-reactivate": ("post", "membership", {}, ADMIN_ACTION),
    "crm:invitation-revoke": ("post", "invitation", {}, ADMIN_ACTION),
    "crm:invitation-resend": ("post", "invitation", {}, ADMIN_ACTION),
    # The link of an invitation email: a public page that explains what to do.
    "crm:invitation": ("get", "token", {}, PUBLIC),
    # Email: templates, composing, sends, unsubscribing.
    "crm_mail:home": ("get", "", {}, REDIRECT),
    "crm_mail:templates": ("get", "", {}, OWN),
    "crm_mail:template-create": ("get", "", {}, OWN),
    "crm_mail:template": ("get", "template", {}, RECORD),
    "crm_mail:template-edit": ("get", "template", {}, DELETE),
    "crm_mail:template-clone": (
        "post", "template", {}, {"ada": 302, "bob": 302, "charlie": 404, "anonymous": SIGN_IN},
    ),
    "crm_mail:template-delete": ("get", "template", {}, DELETE),
    "crm_mail:compose": ("get", "", {"module": "leads", "ids": "{lead}"}, RECORD),
    "crm_mail:batches": ("get", "", {}, OWN),
    "crm_mail:batch": ("get", "batch", {}, RECORD),
    "crm_mail:unsubscribe": ("get", "unsubscribe", {}, PUBLIC),
    # CSV import and export.
    "crm_imports:start": ("get", "", {}, OWN),
    "crm_imports:detail": ("get", "job", {}, ADAS),
    "crm_imports:mapping": ("get", "job", {}, ADAS),
    "crm_imports:preview": ("get", "job", {}, ADAS),
    "crm_imports:run": ("post", "job", {}, ADAS_ACTION),
    "crm_imports:discard": ("post", "job", {}, ADAS_ACTION),
    "crm_imports:export": ("get", "module", {}, OWN),
    # Personal API tokens.
    "crm_api:tokens": ("get", "", {}, OWN),
    "crm_api:token-revoke": ("post", "api_token", {}, ADAS_ACTION),
    # Settings > Audit log.
    "crm_audit:log": ("get", "", {}, ADMIN),
    # Settings > Extensions & APIs > Survey (S1: administrators only).
    "crm_integration:settings": ("get", "", {}, ADMIN),
    # An empty reconnect form is refused (422). Kizuna Demo is set up: disabling asks to
    # confirm, setup goes back to the settings page; Sato Trading is not: the reverse.
    "crm_integration:reconnect": (
        "post", "", {}, {"ada": 422, "bob": 403, "charlie": 422, "anonymous": SIGN_IN},
    ),
    "crm_integration:disable": ("get", "", {}, {**ADMIN, "charlie": 302}),
    # Nothing stopped to finish: back to the settings page, for administrators.
    "crm_integration:finish-disabling": (
        "post", "", {"email": "ada@example.com", "key": ""}, ADMIN_REDIRECT,
    ),
    "crm_integration:finish-without-survey": ("post", "", {}, ADMIN_REDIRECT),
    "crm_integration:setup-start": ("get", "", {}, {**ADMIN, "ada": 302}),
    "crm_integration:setup-cancel": ("post", "", {}, ADMIN_REDIRECT),
    "crm_integration:setup": ("get", "step", {}, {**ADMIN, "ada": 302}),
    # The address the Survey service posts webhooks to: no session, the token in the URL
    # names the connection; an unknown one is 404 to everybody (never 410: that would stop
    # the Survey service's deliveries for good).
    "crm_integration:intake": (
        "post", "intake", {}, {"ada": 404, "bob": 404, "charlie": 404, "anonymous": 404},
    ),
    # Survey responses in the CRM (E1, E4): delivery health, reconciling, unmatched ones.
    "crm_survey_responses:delivery": ("get", "", {}, ADMIN),
    "crm_survey_responses:reconcile": ("post", "", {}, ADMIN_REDIRECT),
    "crm_survey_responses:dismiss-unmatched": ("post", "unmatched", {}, ADMIN_ACTION),
    "crm_survey_responses:history": ("get", "module,lead", {}, RECORD),
    # Send a survey to a lead (E2): a record of Kizuna Demo, nothing set up to send with.
    "crm_survey_sending:send": ("get", "", {"module": "leads", "ids": "{lead}"}, RECORD),
}  # fmt: skip

HOW = (
    "method get or post, the objects the URL needs (made in the `objects` fixture below), "
    "form data, and the status of ada, bob, charlie and anonymous: a group such as OWN, "
    "RECORD, ADMIN, ADMIN_ACTION defined above, or a dict of its own"
)
LINE = '"{name}": ("get", "", {{}}, ADMIN),  # {path}: check each answer'


def test_the_matrix_covers_every_crm_page() -> None:
    problems = coverage_problems(
        served=page_routes("crm"), listed=MATRIX, module=__name__.replace(".", "/") + ".py",
        how=HOW, line=LINE,
    )  # fmt: skip
    assert not problems, "\n".join(problems)


@pytest.fixture
def objects(
    lead: Lead, contact: Contact, ada_membership: Membership, bob_membership: Membership
) -> dict[str, Any]:
    organization, ada = ada_membership.organization, ada_membership.user
    invitation, token = services.invite_member(
        organization=organization, email="x@example.com", role=Role.STANDARD, by=ada
    )
    template = mail_services.create_template(
        organization=organization, by=ada, module="leads", name="Welcome",
        subject="Hello", body_html="", body_text="Hello",
    )  # fmt: skip
    batch = mail_services.queue_emails(
        organization=organization, sender=ada, module="leads", records=[lead],
        subject="Hello", body_html="", body_text="Hello",
    )  # fmt: skip
    job = ImportJob.objects.create(
        organization=organization, created_by=ada, module="leads", filename="leads.csv",
        encoding="utf-8", content="Family name\nTanaka\n", row_count=1,
        status=ImportStatus.UPLOADED,
    )  # fmt: skip
    api_token, _ = create_api_token(user=ada, organization=organization, name="Ada's script")
    # Kizuna Demo's Survey integration, waiting for a new SC key (K2): its pages and responses
    # show, and nothing calls a Survey service.
    connection = Connection.objects.create(
        organization=organization, method=ConnectionMethod.OTHER_ACCOUNT,
        survey_account_id=1, survey_account_name="Ada's Surveys", sc_email=ada.email,
        sc_key_encrypted="", enabled_by=ada, state=ConnectionState.NEEDS_RECONNECTION,
    )  # fmt: skip
    unmatched = UnmatchedResponse.objects.create(
        connection=connection, organization=organization, response_id="r-1",
        recipient_reference="lead:0", survey_id=1, survey_title="Visit",
        submitted_at=timezone.now(),
    )  # fmt: skip
    return {
        "lead": lead.pk,
        "contact": contact.pk,
        "membership": bob_membership.pk,
        "invitation": invitation.pk,
        "token": token,
        "organization": organization.pk,
        "template": template.pk,
        "batch": batch.pk,
        "unsubscribe": OutgoingMessage.objects.get(batch=batch).unsubscribe_token,
        "job": job.pk,
        "module": "leads",
        "api_token": api_token.pk,
        "step": "method",
        "intake": "not-a-connection",
        "unmatched": unmatched.pk,
    }


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("name", sorted(MATRIX))
def test_persona_matrix(
    personas: dict[str, Client], objects: dict[str, Any], name: str, persona: str
) -> None:
    method, needs, data, expected = MATRIX[name]
    url = reverse(name, args=[objects[need] for need in needs.split(",") if need])
    filled = {key.format(**objects): str(value).format(**objects) for key, value in data.items()}
    response = getattr(personas[persona], method)(url, filled)
    answer = (response.status_code, response.get("Location", ""))
    if expected[persona] == SIGN_IN:
        assert answer[0] == 302 and answer[1].startswith(reverse("identity:login")), answer
    else:
        assert answer[0] == expected[persona], answer
