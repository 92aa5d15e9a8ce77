"""Messages stored on an import job, kept in every language of the site.

The member who checks a file, the worker that imports it and the member who reads
the result may each use another language, and a finished job no longer holds its
file to validate again. So a message is rendered once per language when it is
stored ({"en": "...", "ja": "..."}), which also covers Django's own validation
messages and plural forms, and the page picks the reader's language.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.utils import translation

T = TypeVar("T")


def in_every_language(render: Callable[[], T]) -> dict[str, T]:
    """What render() returns under each language of settings.LANGUAGES."""
    texts: dict[str, T] = {}
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            texts[code] = render()
    return texts


def in_readers_language(stored: Any) -> Any:
    """The reader's version of a stored message; a plain value (stored before messages
    were kept in every language) as it is."""
    if not isinstance(stored, dict):
        return stored
    language = translation.get_language() or settings.LANGUAGE_CODE
    for code in (language, language.split("-")[0], settings.LANGUAGE_CODE):
        if code in stored:
            return stored[code]
    return next(iter(stored.values()), "")
