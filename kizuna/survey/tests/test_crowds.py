"""Issue 12: respondents who share an address are never turned away.

Point 1: an invitation link is bounded by its token, not by the address; made-up tokens are
refused cheaply (404) and counted per address.
"""

from __future__ import annotations

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from kizuna.config import Rate
from kizuna.survey.models import Invitation, Question, Response, Survey
from kizuna.survey.tests.respondent import one_page_survey, post

pytestmark = pytest.mark.django_db
OFFICE = "198.51.100.20"  # the one address of a customer company behind its NAT


@pytest.fixture
def question(survey: Survey) -> Question:
    return one_page_survey(survey, "nps")


def invitation_url(invitation: Invitation) -> str:
    return reverse("survey_public:invitation", args=[invitation.token])


@override_settings(KIZUNA_SURVEY_SUBMIT_RATE=Rate(1, 600))
def test_12_1_300_invitation_submissions_from_one_address_are_all_stored(
    survey: Survey, question: Question
) -> None:
    invitations = [
        Invitation.objects.create(survey=survey, recipient_reference=f"crm:contact:{n}")
        for n in range(300)
    ]

    statuses = {
        post(
            Client(), invitation_url(invitation), {f"q{question.pk}": "9"}, REMOTE_ADDR=OFFICE
        ).status_code
        for invitation in invitations
    }

    assert statuses == {302}
    assert Response.objects.count() == 300
    assert Invitation.objects.filter(completed_at__isnull=True).count() == 0


@override_settings(KIZUNA_SURVEY_SUBMIT_RATE=Rate(1, 600))
def test_12_1_invitations_do_not_use_up_the_public_links_allowance(
    survey: Survey, question: Question
) -> None:
    invitation = Invitation.objects.create(survey=survey, recipient_reference="crm:lead:1")
    public = reverse("survey_public:survey", args=[survey.public_id])

    invited = post(Client(), invitation_url(invitation), {f"q{question.pk}": "8"})
    shared = post(Client(), public, {f"q{question.pk}": "7"})

    assert (invited.status_code, shared.status_code) == (302, 302)


@override_settings(KIZUNA_SURVEY_UNKNOWN_LINK_RATE=Rate(3, 600))
def test_12_1_made_up_tokens_get_404_and_are_counted_per_address(
    survey: Survey, question: Question
) -> None:
    invitation = Invitation.objects.create(survey=survey, recipient_reference="crm:lead:1")
    guesses = [Client().get(f"/s/i/guess-{n}/", REMOTE_ADDR=OFFICE).status_code for n in range(3)]

    limited = Client().post("/s/i/guess-9/", {"page": "1"}, REMOTE_ADDR=OFFICE)
    real = post(Client(), invitation_url(invitation), {f"q{question.pk}": "10"}, REMOTE_ADDR=OFFICE)
    elsewhere = Client().get("/s/i/guess-9/", REMOTE_ADDR="192.0.2.44")

    assert guesses == [404, 404, 404]
    assert limited.status_code == 429
    assert 1 <= int(limited["Retry-After"]) <= 200
    assert "Too many unknown links" in limited.content.decode()
    assert real.status_code == 302
    assert elsewhere.status_code == 404
    assert Response.objects.count() == 1


@override_settings(KIZUNA_SURVEY_UNKNOWN_LINK_RATE=Rate(1, 600))
def test_12_1_the_unknown_links_page_speaks_the_browsers_language() -> None:
    Client().get("/s/i/guess-1/", REMOTE_ADDR=OFFICE)

    limited = Client().get("/s/i/guess-2/", REMOTE_ADDR=OFFICE, HTTP_ACCEPT_LANGUAGE="ja")

    assert limited.status_code == 429
    assert "存在しないリンクが多すぎます" in limited.content.decode()
