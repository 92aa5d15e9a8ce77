from collections.abc import Iterator

import pytest
from django.utils import translation

from kizuna.testing.survey_keys import *  # noqa: F403


@pytest.fixture(autouse=True)
def _english_outside_requests() -> Iterator[None]:
    """A request in Japanese leaves Japanese active in the thread; sentences are read in English."""
    with translation.override("en"):
        yield
