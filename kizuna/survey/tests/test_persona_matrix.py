"""Every Survey page, for every persona: Ada (administrator of "Ada's Surveys"), Bob (a plain
member of it), Carol (administrator of another account: objects of Ada's account are 404 to
her, its pages show her own account), Charlie (a CRM-only user: no Survey account at all) and
a signed-out visitor.

MATRIX lists every URL name of the `survey` namespace and its sub-namespaces (results, SC
key, webhooks, audit log) and of every other `survey_*` one (the public pages): a route that
is not here fails test_the_matrix_covers_every_survey_page, which says what to add. The REST
API has a matrix of its own (kizuna/survey/api/tests/test_persona_matrix.py). The objects
used all belong to Ada's account; the pending member invitation is addressed to Charlie, so
he is the one who may accept or decline it. Write actions are also tested for their effect
(and its absence) in the per-view files.
"""

from __future__ import annotations

import datetime
import secrets
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kizuna.identity.models import User
from kizuna.survey.models import (
    AccountMember,
    Invitation,
    MemberInvitation,
    MemberRole,
    Portal,
    Response,
    Section,
    Survey,
)
from kizuna.survey.tests.respondent import add_question
from kizuna.survey.webhooks import services as webhook_services
from kizuna.survey.webhooks.models import Delivery
from kizuna.testing.matrix import SIGN_IN, coverage_problems, page_routes
from kizuna.work.leases import WorkStatus

pytestmark = pytest.mark.django_db

PERSONAS = ("ada", "bob", "carol", "charlie", "anonymous")

Expected = dict[str, int | str]
# Pages of the current account: Carol sees her own, Charlie has none.
OWN: Expected = {"ada": 200, "bob": 200, "carol": 200, "charlie": 404, "anonymous": SIGN_IN}
# An object of Ada's account any member may see or change.
MEMBER: Expected = {"ada": 200, "bob": 200, "carol": 404, "charlie": 404, "anonymous": SIGN_IN}
MEMBER_ACTION: Expected = {
    "ada": 302, "bob": 302, "carol": 404, "charlie": 404, "anonymous": SIGN_IN,
}  # fmt: skip
# Administrator pages of the current account.
ADMIN: Expected = {"ada": 200, "bob": 403, "carol": 200, "charlie": 404, "anonymous": SIGN_IN}
# Administrator pages of an object of Ada's account.
ADMIN_OBJECT: Expected = {
    "ada": 200, "bob": 403, "carol": 404, "charlie": 404, "anonymous": SIGN_IN,
}  # fmt: skip
# Administrator actions on an object of Ada's account.
ADMIN_ACTION: Expected = {
    "ada": 302, "bob": 403, "carol": 404, "charlie": 404, "anonymous": SIGN_IN,
}  # fmt: skip
# What the invitee (Charlie) does with the invitation addressed to him.
INVITEE_ACTION: Expected = {
    "ada": 404, "bob": 404, "carol": 404, "charlie": 302, "anonymous": SIGN_IN,
}  # fmt: skip
# Pages for respondents: anybody, signed in or not.
PUBLIC: Expected = {"ada": 200, "bob": 200, "carol": 200, "charlie": 200, "anonymous": 200}
# Pages of any signed-in user, with or without an account.
SIGNED_IN: Expected = {"ada": 200, "bob": 200, "carol": 200, "charlie": 200, "anonymous": SIGN_IN}

# name: (method, what the URL needs (comma-separated), data, {persona: status})
MATRIX: dict[str, tuple[str, str, dict[str, Any], Expected]] = {
    "survey:home": ("get", "", {}, SIGNED_IN),
    "survey:account-new": ("get", "", {}, SIGNED_IN),
    "survey:account-switch": (
        "post", "", {"account": "{account}"},
        {"ada": 302, "bob": 302, "carol": 404, "charlie": 404, "anonymous": SIGN_IN},
    ),
    "survey:members": ("get", "", {}, ADMIN),
    "survey:member-role": ("post", "member", {"role": MemberRole.ADMINISTRATOR}, ADMIN_ACTION),
    "survey:member-remove": ("post", "member", {}, ADMIN_ACTION),
    "survey:member-invitation-resend": ("post", "member_invitation", {}, ADMIN_ACTION),
    "survey:member-invitation-withdraw": ("post", "member_invitation", {}, ADMIN_ACTION),
    "survey:invitation-accept": ("post", "member_invitation", {}, INVITEE_ACTION),
    "survey:invitation-decline": ("post", "member_invitation", {}, INVITEE_ACTION),
    # The link of a member invitation email: the token is the authority.
    "survey:join": ("get", "join_token", {}, PUBLIC),
    "survey:portals": ("get", "", {}, ADMIN),
    "survey:portal-rename": ("get", "portal", {}, ADMIN_OBJECT),
    "survey:portal-delete": ("post", "second_portal", {}, ADMIN_ACTION),
    "survey:survey-new": ("get", "", {}, OWN),
    "survey:survey": ("get", "survey", {}, MEMBER),
    "survey:survey-edit": ("get", "survey", {}, MEMBER),
    "survey:survey-open": ("post", "survey", {"is_open": "false"}, MEMBER_ACTION),
    "survey:survey-copy": ("post", "survey", {}, MEMBER_ACTION),
    "survey:survey-delete": ("get", "survey", {}, MEMBER),
    "survey:question-new": ("get", "survey", {"kind": "short_text"}, MEMBER),
    "survey:question-edit": ("get", "survey,question", {}, MEMBER),
    "survey:question-delete": ("post", "survey,question", {}, MEMBER_ACTION),
    "survey:question-copy": ("post", "survey,question", {}, MEMBER_ACTION),
    "survey:question-restore": ("post", "survey,question", {}, MEMBER_ACTION),
    "survey:question-move": ("post", "survey,question", {"direction": "down"}, MEMBER_ACTION),
    "survey:section-new": ("post", "survey", {}, MEMBER_ACTION),
    "survey:section-edit": ("get", "survey,section", {}, MEMBER),
    "survey:section-move": ("post", "survey,section", {"direction": "down"}, MEMBER_ACTION),
    "survey:section-delete": ("post", "survey,section", {}, MEMBER_ACTION),
    "survey:survey_results:summary": ("get", "survey", {}, MEMBER),
    "survey:survey_results:responses": ("get", "survey", {}, MEMBER),
    "survey:survey_results:response": ("get", "survey,response", {}, MEMBER),
    "survey:survey_results:response-delete": ("post", "survey,response", {}, ADMIN_ACTION),
    "survey:survey_results:export": ("get", "survey", {}, MEMBER),
    "survey:survey_keys:sc-key": ("get", "", {}, ADMIN),
    "survey:survey_keys:regenerate": ("post", "", {}, {**ADMIN, "ada": 302, "carol": 302}),
    "survey:survey_webhooks:endpoints": ("get", "", {}, ADMIN),
    "survey:survey_webhooks:endpoint": ("get", "endpoint", {}, ADMIN_OBJECT),
    "survey:survey_webhooks:endpoint-enable": ("post", "endpoint", {}, ADMIN_ACTION),
    "survey:survey_webhooks:endpoint-delete": ("post", "endpoint", {}, ADMIN_ACTION),
    "survey:survey_webhooks:endpoint-retry-failed": ("post", "endpoint", {}, ADMIN_ACTION),
    "survey:survey_webhooks:endpoint-resend": (
        "post", "endpoint", {"since": "2026-01-01T00:00"}, ADMIN_ACTION,
    ),
    "survey:survey_webhooks:delivery-replay": ("post", "endpoint,delivery", {}, ADMIN_ACTION),
    "survey:survey_audit:log": ("get", "", {}, ADMIN),
    # What respondents see: the shared link and a personal invitation link.
    "survey_public:survey": ("get", "public_id", {}, PUBLIC),
    "survey_public:done": ("get", "public_id", {}, PUBLIC),
    "survey_public:invitation": ("get", "invitation_token", {}, PUBLIC),
    "survey_public:invitation-done": ("get", "invitation_token", {}, PUBLIC),
}  # fmt: skip

HOW = (
    "method get or post, the objects the URL needs (made in the `objects` fixture below), "
    "form data, and the status of ada, bob, carol, charlie and anonymous: a group such as "
    "OWN, MEMBER, ADMIN, ADMIN_ACTION defined above, or a dict of its own"
)
LINE = '"{name}": ("get", "", {{}}, ADMIN),  # {path}: check each answer'


def test_the_matrix_covers_every_survey_page() -> None:
    problems = coverage_problems(
        served=page_routes("survey"), listed=MATRIX, module=__name__.replace(".", "/") + ".py",
        how=HOW, line=LINE,
    )  # fmt: skip
    assert not problems, "\n".join(problems)


@pytest.fixture
def clients(
    ada_client: Client,
    bob_client: Client,
    carol_client: Client,
    charlie_client: Client,
    anonymous_client: Client,
) -> dict[str, Client]:
    return {
        "ada": ada_client,
        "bob": bob_client,
        "carol": carol_client,
        "charlie": charlie_client,
        "anonymous": anonymous_client,
    }


@pytest.fixture
def objects(
    survey: Survey, portal: Portal, ada: User, bob_member: AccountMember, charlie: User
) -> dict[str, Any]:
    account = portal.account
    section = Section.objects.create(survey=survey, title="About you", position=0)
    Section.objects.create(survey=survey, title="About us", position=1)
    question = add_question(survey, "short_text", "Your name", section=section)
    add_question(survey, "short_text", "Your company", section=section)
    second_portal = Portal.objects.create(account=account, name="Archive")
    response = Response.objects.create(survey=survey, language="en")
    invitation = Invitation.objects.create(
        survey=survey, email="erin@example.com", completed_at=timezone.now()
    )
    join_token = secrets.token_urlsafe(32)
    now = timezone.now()
    member_invitation = MemberInvitation.objects.create(
        account=account, email=charlie.email, role=MemberRole.MEMBER,
        token_hash=MemberInvitation.hash(join_token), invited_by=ada, created_at=now,
        expires_at=now + datetime.timedelta(days=7),
        next_attempt_at=now + datetime.timedelta(days=7),
    )  # fmt: skip
    endpoint, _ = webhook_services.create_endpoint(
        account=account, url="https://93.184.215.14/hook", events=["response.completed"], by=ada
    )
    delivery = Delivery.objects.create(
        endpoint=endpoint, event_type="response.completed",
        payload={"type": "response.completed", "data": {}}, status=WorkStatus.FAILED,
        attempts=26, finished_at=now, last_error="HTTP 503",
    )  # fmt: skip
    return {
        "account": account.pk,
        "member": bob_member.pk,
        "member_invitation": member_invitation.pk,
        "join_token": join_token,
        "portal": portal.pk,
        "second_portal": second_portal.pk,
        "survey": survey.pk,
        "question": question.pk,
        "section": section.pk,
        "response": response.pk,
        "public_id": survey.public_id,
        "invitation_token": invitation.token,
        "endpoint": endpoint.pk,
        "delivery": delivery.pk,
    }


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("name", sorted(MATRIX))
def test_persona_matrix(
    clients: dict[str, Client], objects: dict[str, Any], name: str, persona: str
) -> None:
    method, needs, data, expected = MATRIX[name]
    url = reverse(name, args=[objects[need] for need in needs.split(",") if need])
    filled = {key.format(**objects): str(value).format(**objects) for key, value in data.items()}
    response = getattr(clients[persona], method)(url, filled)
    answer = (response.status_code, response.get("Location", ""))
    if expected[persona] == SIGN_IN:
        assert answer[0] == 302 and answer[1].startswith(reverse("identity:login")), answer
    else:
        assert answer[0] == expected[persona], answer
