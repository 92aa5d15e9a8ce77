"""SC keys and invitation batches racing each other on PostgreSQL."""

from __future__ import annotations

import pytest

from kizuna.survey.api import services as api_services
from kizuna.survey.keys import services
from kizuna.survey.keys.models import ServiceKey
from kizuna.survey.models import AccountMember, Invitation, Survey
from kizuna.testing.races import require_postgresql, run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgresql_only() -> None:
    require_postgresql("needs PostgreSQL row locks and concurrent transactions")


def test_k2_regenerations_at_once_leave_exactly_one_active_key(ada_member: AccountMember):
    original = services.get_or_create_key(member=ada_member)

    def regenerate() -> None:
        services.regenerate_key(
            member=AccountMember.objects.get(pk=ada_member.pk), by=ada_member.user
        )

    assert run_together(regenerate, regenerate, regenerate) == []
    assert ServiceKey.objects.filter(member=ada_member).count() == 4
    assert ServiceKey.objects.filter(member=ada_member, revoked_at__isnull=True).count() == 1
    original.refresh_from_db()
    assert original.revoked_at is not None


def test_k1_first_views_at_once_create_one_key(ada_member: AccountMember):
    keys: list[str] = []

    def first_view() -> None:
        keys.append(services.get_or_create_key(member=ada_member).reveal())

    assert run_together(first_view, first_view, first_view) == []
    assert ServiceKey.objects.filter(member=ada_member).count() == 1
    assert len(set(keys)) == 1


def test_same_invitation_batch_sent_twice_at_once_creates_each_invitation_once(survey: Survey):
    recipients = [api_services.Recipient(recipient_reference=f"lead:{n}") for n in range(50)]
    tokens: list[list[str]] = []

    def send() -> None:
        results = api_services.create_invitations(survey=survey, recipients=recipients)
        tokens.append([invitation.token for invitation, _ in results])

    assert run_together(send, send) == []
    assert Invitation.objects.filter(survey=survey).count() == 50
    assert tokens[0] == tokens[1]
