"""The batch "prepare" step of placeholder namespaces (extensions.py), with a test namespace.

A namespace that prepares its values per batch (survey links: one API call per thousand
recipients) is asked once per part of a send, before any message of that part is queued;
it can refuse the send before anything is queued, and an interrupted send resumes without
ever mailing a recipient without the value prepared for them. Mail leaves through a real
SMTP server (aiosmtpd on loopback).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from django.urls import reverse
from django.utils import timezone

from kizuna.crm.mail import extensions, services
from kizuna.crm.mail.extensions import PlaceholderError, PrepareContext
from kizuna.crm.mail.models import BatchPreparation, OutgoingMessage, SendBatch
from kizuna.crm.models import Activity, ActivityKind, Lead
from kizuna.testing.worker import run_worker
from kizuna.work.leases import WorkStatus


@dataclass
class TicketNamespace:
    """`{{ ticket.<key> }}`: one value per recipient, made per batch like survey links.

    `fail` maps a part number to the error its next call raises (once).
    """

    calls: list[tuple[PrepareContext, list[int]]] = field(default_factory=list)
    fail: dict[int, PlaceholderError | Exception] = field(default_factory=dict)
    resolved: list[str] = field(default_factory=list)
    omit: set[int] = field(default_factory=set)

    def prepare(self, context: PrepareContext, records) -> dict[int, dict[str, str]]:
        self.calls.append((context, [record.pk for record in records]))
        if context.part in self.fail:
            raise self.fail.pop(context.part)
        return {
            record.pk: {
                key: f"T-{key}-{record.pk}-{context.options.get('expiry', '')}"
                for key in context.keys
            }
            for record in records
            if record.pk not in self.omit
        }

    def resolve(self, context, key: str) -> str:
        self.resolved.append(key)
        return f"EXAMPLE-{key}"


@pytest.fixture
def tickets() -> Iterator[TicketNamespace]:
    namespace = TicketNamespace()
    extensions.register_placeholder_namespace(
        "ticket", resolve=namespace.resolve, prepare=namespace.prepare
    )
    try:
        yield namespace
    finally:
        extensions.unregister("ticket")


@pytest.fixture
def small_parts(monkeypatch) -> int:
    monkeypatch.setattr(services, "PREPARE_PART_SIZE", 2)
    return 2


def make_leads(organization, count: int) -> list[Lead]:
    return [
        Lead.objects.create(
            organization=organization,
            family_name=f"Family{i}",
            given_name=f"Given{i}",
            email=f"lead{i}@example.com",
        )
        for i in range(count)
    ]


def queue(organization, sender, leads, **options) -> SendBatch:
    return services.queue_emails(
        organization=organization,
        sender=sender,
        module="leads",
        records=leads,
        subject="Your ticket",
        body_html="",
        body_text="Ticket: {{ ticket.a }} / {{ ticket.b }} / {{ ticket.a }}",
        extension_options={"ticket": options},
    )


def text_of(smtp, address: str) -> str:
    (received,) = smtp.to(address)
    return received.get_body(("plain",)).get_content().replace("\r\n", "\n")


def due_now(preparation: BatchPreparation) -> None:
    BatchPreparation.objects.filter(pk=preparation.pk).update(next_attempt_at=timezone.now())


def test_prepare_is_asked_once_for_the_whole_send_and_each_recipient_gets_their_values(
    ada, ada_client, organization, smtp, tickets
):
    leads = make_leads(organization, 3)
    response = ada_client.post(
        reverse("crm_mail:compose"),
        {
            "module": "leads",
            "ids": ",".join(str(lead.pk) for lead in leads),
            "subject": "Your ticket",
            "body_text": "Ticket: {{ ticket.a }} / {{ ticket.b }} / {{ ticket.a }}",
        },
    )
    batch = SendBatch.objects.get()
    assert response.status_code == 302
    (call,) = tickets.calls
    context, record_ids = call
    assert record_ids == [lead.pk for lead in leads]
    assert context.keys == frozenset({"a", "b"})
    assert (context.part, context.organization, context.sender) == (0, organization, ada)
    assert context.batch_key == batch.preparation.key
    assert batch.preparation.status == WorkStatus.DONE
    assert batch.preparation.prepared_count == 3

    run_worker()

    assert tickets.resolved == []  # the values come from prepare, never one per recipient
    for i, lead in enumerate(leads):
        assert text_of(smtp, f"lead{i}@example.com").startswith(
            f"Ticket: T-a-{lead.pk}- / T-b-{lead.pk}- / T-a-{lead.pk}-\n"
        )
    # Prepared values are the recipient's own: hidden in the sender's copy.
    message = OutgoingMessage.objects.get(lead=leads[0])
    assert f"T-a-{leads[0].pk}-" in message.recipient_only
    assert len(tickets.calls) == 1


@pytest.mark.usefixtures("ada_membership")
def test_prepare_gets_the_options_the_sender_chose(ada, organization, smtp, tickets):
    (lead,) = make_leads(organization, 1)
    queue(organization, ada, [lead], expiry="30")
    run_worker()
    assert tickets.calls[0][0].options == {"expiry": "30"}
    assert text_of(smtp, "lead0@example.com").startswith(f"Ticket: T-a-{lead.pk}-30 /")


@pytest.mark.parametrize(
    ("language", "shown"),
    [("en", "Nothing was sent: the ticket office is closed."), ("ja", "送信していません")],
)
def test_a_refusal_of_prepare_is_shown_and_nothing_is_queued_or_sent(
    ada, ada_client, organization, smtp, tickets, language, shown
):
    ada.language = language
    ada.save(update_fields=["language"])
    leads = make_leads(organization, 2)

    def refuse(context, records):
        # The namespace writes its reason in the sender's language (active here).
        from django.utils.translation import get_language

        assert get_language() == language
        raise PlaceholderError(
            "送信していません"
            if language == "ja"
            else "Nothing was sent: the ticket office is closed."
        )

    extensions.register_placeholder_namespace("ticket", resolve=tickets.resolve, prepare=refuse)
    response = ada_client.post(
        reverse("crm_mail:compose"),
        {
            "module": "leads",
            "ids": ",".join(str(lead.pk) for lead in leads),
            "subject": "S",
            "body_text": "Ticket: {{ ticket.a }}",
        },
    )
    assert response.status_code == 200
    assert shown in response.content.decode()
    run_worker()
    assert SendBatch.objects.count() == 0
    assert OutgoingMessage.objects.count() == 0
    assert BatchPreparation.objects.count() == 0
    assert Activity.objects.count() == 0
    assert smtp.messages == []


@pytest.mark.usefixtures("ada_membership")
def test_a_recipient_without_a_prepared_value_stops_the_send_before_anything_is_queued(
    ada, organization, smtp, tickets
):
    leads = make_leads(organization, 3)
    tickets.omit = {leads[1].pk}
    with pytest.raises(PlaceholderError):
        queue(organization, ada, leads)
    run_worker()
    assert SendBatch.objects.count() == OutgoingMessage.objects.count() == 0
    assert smtp.messages == []


@pytest.mark.usefixtures("ada_membership")
def test_a_send_larger_than_one_part_is_prepared_part_by_part_by_the_worker(
    ada, organization, smtp, tickets, small_parts
):
    leads = make_leads(organization, 5)
    batch = queue(organization, ada, leads)

    # The first part is prepared while the sender waits, the rest by the worker.
    assert [ids for _context, ids in tickets.calls] == [[leads[0].pk, leads[1].pk]]
    assert OutgoingMessage.objects.count() == 2
    progress = batch.progress()
    assert (progress.waiting, progress.preparing, progress.total) == (5, 3, 5)

    run_worker()

    assert [ids for _context, ids in tickets.calls] == [
        [leads[0].pk, leads[1].pk],
        [leads[2].pk, leads[3].pk],
        [leads[4].pk],
    ]
    assert [context.part for context, _ids in tickets.calls] == [0, 1, 2]
    assert len({context.batch_key for context, _ids in tickets.calls}) == 1
    for i, lead in enumerate(leads):
        assert text_of(smtp, f"lead{i}@example.com").startswith(f"Ticket: T-a-{lead.pk}- /")
    progress = SendBatch.objects.get(pk=batch.pk).progress()
    assert (progress.sent, progress.waiting, progress.preparing, progress.failed) == (5, 0, 0, 0)
    assert BatchPreparation.objects.get().status == WorkStatus.DONE
    queued = Activity.objects.filter(kind=ActivityKind.EMAIL_QUEUED)
    assert sorted(queued.values_list("lead_id", flat=True)) == [lead.pk for lead in leads]


def test_a_send_interrupted_by_an_outage_resumes_and_never_mails_an_unprepared_recipient(
    ada, ada_client, organization, smtp, tickets, small_parts
):
    leads = make_leads(organization, 5)
    tickets.fail[1] = PlaceholderError("The ticket office is not reachable.", temporary=True)
    batch = queue(organization, ada, leads)

    run_worker()

    # Part 0 went out; parts 1 and 2 wait, and nobody in them got a message.
    assert sorted(r.envelope_to[0] for r in smtp.messages) == [
        "lead0@example.com",
        "lead1@example.com",
    ]
    preparation = BatchPreparation.objects.get()
    assert preparation.status == WorkStatus.PENDING
    assert preparation.prepared_count == 2
    assert preparation.last_error == "The ticket office is not reachable."
    assert preparation.next_attempt_at > timezone.now()
    progress = SendBatch.objects.get(pk=batch.pk).progress()
    assert (progress.sent, progress.waiting, progress.preparing) == (2, 3, 3)
    page = ada_client.get(reverse("crm_mail:batch", args=[batch.pk])).content.decode()
    assert 'data-preparing="3"' in page
    assert "Retrying after: The ticket office is not reachable." in page

    due_now(preparation)
    run_worker()

    # Part 1 is asked again under the same name (idempotent at the remote service).
    parts = [(context.batch_key, context.part) for context, _ids in tickets.calls]
    key = preparation.key
    assert parts == [(key, 0), (key, 1), (key, 1), (key, 2)]
    assert len(smtp.messages) == 5
    for i, lead in enumerate(leads):
        assert text_of(smtp, f"lead{i}@example.com").startswith(f"Ticket: T-a-{lead.pk}- /")
    assert OutgoingMessage.objects.count() == 5  # nobody queued twice
    assert BatchPreparation.objects.get().status == WorkStatus.DONE


@pytest.mark.usefixtures("ada_membership")
def test_a_crash_in_prepare_is_retried_like_any_failed_attempt(
    ada, organization, smtp, tickets, small_parts
):
    leads = make_leads(organization, 3)
    tickets.fail[1] = ConnectionResetError("connection reset")
    queue(organization, ada, leads)
    run_worker()
    preparation = BatchPreparation.objects.get()
    assert preparation.status == WorkStatus.PENDING
    assert "ConnectionResetError" in preparation.last_error
    assert len(smtp.messages) == 2
    due_now(preparation)
    run_worker()
    assert len(smtp.messages) == 3
    assert BatchPreparation.objects.get().status == WorkStatus.DONE


@pytest.mark.parametrize(
    ("language", "heading"),
    [
        ("en", "Not sent to the recipients that were left:"),
        ("ja", "残りの宛先には送信していません:"),
    ],
)
def test_a_refusal_in_a_later_part_ends_the_send_for_those_left_with_the_reason(
    ada, ada_client, organization, smtp, tickets, small_parts, language, heading
):
    leads = make_leads(organization, 5)
    tickets.fail[1] = PlaceholderError("The ticket office closed.")
    batch = queue(organization, ada, leads)

    run_worker()

    assert len(smtp.messages) == 2
    preparation = BatchPreparation.objects.get()
    assert preparation.status == WorkStatus.FAILED
    progress = SendBatch.objects.get(pk=batch.pk).progress()
    assert (progress.sent, progress.failed, progress.waiting, progress.is_finished) == (
        2,
        3,
        0,
        True,
    )
    ada_client.cookies["kizuna_language"] = language
    ada.language = language
    ada.save(update_fields=["language"])
    page = ada_client.get(reverse("crm_mail:batch", args=[batch.pk])).content.decode()
    assert f"{heading} The ticket office closed." in page
    assert "hx-trigger" not in page  # finished: the page stops polling
    assert OutgoingMessage.objects.count() == 2


@pytest.mark.usefixtures("ada_membership")
def test_a_record_deleted_before_its_part_was_prepared_is_skipped(
    ada, organization, smtp, tickets, small_parts
):
    leads = make_leads(organization, 3)
    batch = queue(organization, ada, leads)
    leads[2].delete()
    run_worker()
    batch.refresh_from_db()
    assert [entry["reason"] for entry in batch.skipped] == [services.SKIP_DELETED]
    progress = SendBatch.objects.get(pk=batch.pk).progress()
    assert (progress.sent, progress.skipped, progress.waiting, progress.is_finished) == (
        2,
        1,
        0,
        True,
    )


def test_the_template_preview_resolves_an_example_and_prepares_nothing(
    ada, ada_client, organization, tickets
):
    make_leads(organization, 1)
    template = services.create_template(
        organization=organization,
        by=ada,
        module="leads",
        name="Ticket",
        subject="S",
        body_html="",
        body_text="Ticket: {{ ticket.a }}",
    )
    page = ada_client.get(reverse("crm_mail:template", args=[template.pk])).content.decode()
    assert "Ticket: EXAMPLE-a" in page
    assert tickets.calls == []
