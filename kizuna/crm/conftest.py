"""Test configuration of every test under kizuna/crm (the personas are in kizuna/testing/)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.utils import translation


@pytest.fixture(autouse=True)
def _english_outside_requests() -> Iterator[None]:
    """A request in Japanese leaves Japanese active in the thread; direct calls expect English."""
    with translation.override("en"):
        yield
