"""The audit trails' shared reading of an entry: older entries and unknown actions never crash."""

from __future__ import annotations

from types import SimpleNamespace

from kizuna.lib.audit import sentence, sentence_values

SENTENCES = {"portal.renamed": "%(actor)s renamed the portal “%(old)s” to “%(new)s”."}


def entry(action: str, data: object, *, email: str = "dan@example.com") -> SimpleNamespace:
    return SimpleNamespace(
        action=action, data=data, actor=None, actor_email=email, target_repr="Events"
    )


def test_a_deleted_actor_reads_as_the_email_kept_and_no_actor_as_kizuna() -> None:
    assert sentence_values(entry("portal.renamed", {}))["actor"] == "dan@example.com"
    assert sentence_values(entry("portal.renamed", {}, email=""))["actor"] == "Kizuna"


def test_a_value_missing_from_an_older_entry_reads_as_nothing() -> None:
    old = entry("portal.renamed", {"new": "Seminars"})
    assert sentence(old, SENTENCES, sentence_values(old)) == (
        "dan@example.com renamed the portal “” to “Seminars”."
    )


def test_an_action_without_a_sentence_reads_as_its_name() -> None:
    later = entry("portal.archived", ["not", "a", "dict"])
    assert sentence(later, SENTENCES, sentence_values(later)) == "portal.archived"
