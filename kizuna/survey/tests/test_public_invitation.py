"""One person's link /s/i/<token>/: one completed response, expiry, closed state, timestamps."""

from __future__ import annotations

import datetime
from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kizuna.survey.models import Invitation, Question, Response, Survey
from kizuna.survey.tests.respondent import one_page_survey, post, two_page_survey
from kizuna.testing.races import require_postgresql, run_together


@pytest.fixture
def question(survey: Survey) -> Question:
    return one_page_survey(survey, "nps")


@pytest.fixture
def invitation(survey: Survey) -> Invitation:
    return Invitation.objects.create(
        survey=survey, recipient_reference="crm:lead:42", email="hana@example.com", name="Hana"
    )


def url_of(invitation: Invitation) -> str:
    return reverse("survey_public:invitation", args=[invitation.token])


def test_the_token_is_unguessable_at_least_128_bits(invitation: Invitation) -> None:
    # token_urlsafe: 6 bits per character
    assert len(invitation.token) * 6 >= 128
    assert Invitation.objects.create(survey=invitation.survey).token != invitation.token


def test_first_opening_is_recorded_once(
    invitation: Invitation, question: Question, anonymous_client: Client
) -> None:
    first = anonymous_client.get(url_of(invitation))
    invitation.refresh_from_db()
    opened_at = invitation.opened_at
    anonymous_client.get(url_of(invitation))
    invitation.refresh_from_db()

    assert first.status_code == 200
    assert opened_at is not None
    assert invitation.opened_at == opened_at
    assert invitation.started_at is None
    assert invitation.completed_at is None


def test_submitting_records_started_and_completed_and_links_the_response(
    invitation: Invitation, question: Question, anonymous_client: Client
) -> None:
    anonymous_client.get(url_of(invitation))

    page = post(anonymous_client, url_of(invitation), {f"q{question.pk}": "9"})

    assert page.status_code == 302
    assert page["Location"] == reverse("survey_public:invitation-done", args=[invitation.token])
    invitation.refresh_from_db()
    response = Response.objects.get(survey=invitation.survey)
    assert response.invitation == invitation
    assert response.recipient_reference == "crm:lead:42"
    assert invitation.opened_at is not None
    assert invitation.started_at is not None
    assert invitation.completed_at is not None
    assert invitation.opened_at <= invitation.started_at <= invitation.completed_at
    assert invitation.completed_at == response.submitted_at
    assert response.answers.get().value == 9


def test_a_submit_without_an_earlier_visit_still_records_the_opening(
    invitation: Invitation, question: Question, anonymous_client: Client
) -> None:
    head = anonymous_client.head(url_of(invitation))
    invitation.refresh_from_db()
    assert head.status_code == 200
    assert invitation.opened_at is None

    post(anonymous_client, url_of(invitation), {f"q{question.pk}": "3"})

    invitation.refresh_from_db()
    assert invitation.opened_at is not None
    assert invitation.completed_at is not None
    assert invitation.opened_at <= invitation.completed_at


def test_started_is_recorded_on_the_first_page_submit(
    survey: Survey, invitation: Invitation, anonymous_client: Client
) -> None:
    name, _rating = two_page_survey(survey)

    anonymous_client.post(
        url_of(invitation), {"page": "1", "action": "next", f"q{name.pk}": "Hana"}
    )

    invitation.refresh_from_db()
    assert invitation.started_at is not None
    assert invitation.completed_at is None
    assert Response.objects.count() == 0


def test_an_invitation_accepts_one_response_then_says_it_was_answered(
    invitation: Invitation, question: Question, anonymous_client: Client
) -> None:
    post(anonymous_client, url_of(invitation), {f"q{question.pk}": "9"})

    again = post(Client(), url_of(invitation), {f"q{question.pk}": "0"})
    shown = Client().get(url_of(invitation))

    assert again.status_code == 409
    assert "You have already answered this survey" in again.content.decode()
    assert shown.status_code == 200
    assert "You have already answered this survey" in shown.content.decode()
    assert Response.objects.count() == 1
    assert Response.objects.get().answers.get().value == 9


def test_an_anonymous_survey_keeps_no_link_but_the_invitation_is_still_single_use(
    survey: Survey, invitation: Invitation, question: Question, anonymous_client: Client
) -> None:
    survey.is_anonymous = True
    survey.save(update_fields=["is_anonymous"])

    first = post(anonymous_client, url_of(invitation), {f"q{question.pk}": "7"})
    second = post(Client(), url_of(invitation), {f"q{question.pk}": "8"})

    assert first.status_code == 302
    assert second.status_code == 409
    response = Response.objects.get()
    assert response.invitation is None
    assert response.recipient_reference == ""
    invitation.refresh_from_db()
    assert invitation.completed_at is not None


def test_an_expired_invitation_is_refused_with_410(
    invitation: Invitation, question: Question, anonymous_client: Client
) -> None:
    invitation.expires_at = timezone.now() - datetime.timedelta(minutes=1)
    invitation.save(update_fields=["expires_at"])

    shown = anonymous_client.get(url_of(invitation))
    sent = post(anonymous_client, url_of(invitation), {f"q{question.pk}": "9"})

    assert shown.status_code == 410
    assert "This link has expired" in shown.content.decode()
    assert sent.status_code == 410
    assert Response.objects.count() == 0
    invitation.refresh_from_db()
    assert invitation.completed_at is None


def test_an_invitation_to_a_closed_survey_is_refused_with_410(
    survey: Survey, invitation: Invitation, question: Question, anonymous_client: Client
) -> None:
    survey.closes_at = timezone.now() - datetime.timedelta(seconds=1)
    survey.save(update_fields=["closes_at"])

    sent = post(anonymous_client, url_of(invitation), {f"q{question.pk}": "9"})

    assert sent.status_code == 410
    assert "This survey is closed" in sent.content.decode()
    assert Response.objects.count() == 0


def test_an_unknown_token_is_404(db: None, anonymous_client: Client) -> None:
    assert anonymous_client.get("/s/i/not-a-real-token/").status_code == 404


def test_the_done_page_of_an_unanswered_invitation_leads_back_to_the_form(
    invitation: Invitation, anonymous_client: Client
) -> None:
    page = anonymous_client.get(reverse("survey_public:invitation-done", args=[invitation.token]))

    assert page.status_code == 302
    assert page["Location"] == url_of(invitation)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("is_anonymous", [False, True], ids=["named", "anonymous"])
def test_concurrent_submits_of_one_invitation_store_exactly_one_response(
    survey: Survey, invitation: Invitation, question: Question, is_anonymous: bool
) -> None:
    require_postgresql()
    survey.is_anonymous = is_anonymous
    survey.save(update_fields=["is_anonymous"])
    threads_count = 6
    statuses: list[int] = []

    def submit(value: int) -> Callable[[], None]:
        def action() -> None:
            page = post(Client(), url_of(invitation), {f"q{question.pk}": str(value)})
            statuses.append(page.status_code)

        return action

    errors = run_together(*(submit(n) for n in range(threads_count)))

    assert errors == []
    assert sorted(statuses) == [302] + [409] * (threads_count - 1)
    assert Response.objects.filter(survey=survey).count() == 1
    invitation.refresh_from_db()
    response = Response.objects.get(survey=survey)
    assert invitation.completed_at == response.submitted_at
    # An anonymous response keeps no link, yet the invitation was still used once.
    assert response.invitation_id == (None if is_anonymous else invitation.pk)
