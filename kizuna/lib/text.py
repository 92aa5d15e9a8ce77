"""Validators for text people type: no control characters where they would do harm.

Names go into email headers (To, From, Subject): a line break there would inject a
header or make the message unsendable, and invisible characters make records that
look alike but are not. Single-line fields refuse every control character but tab;
multi-line fields keep line breaks too.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

# C0 controls, DEL, C1 controls (NEL among them), and the Unicode line and paragraph
# separators; tab is allowed everywhere, line feed and carriage return in multi-line text.
_SINGLE_LINE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_MULTI_LINE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")

SINGLE_LINE_MESSAGE = _(
    "Line breaks and other control characters are not allowed here (found %(code)s)."
)
MULTI_LINE_MESSAGE = _("Control characters are not allowed here (found %(code)s).")


def control_character(value: str, *, multi_line: bool = False) -> str | None:
    """The first character of `value` that the field may not hold, as "U+000A"; or None."""
    found = (_MULTI_LINE if multi_line else _SINGLE_LINE).search(value)
    return f"U+{ord(found.group(0)):04X}" if found else None


def validate_single_line(value: str) -> None:
    """Django validator for names and other one-line text."""
    code = control_character(value)
    if code is not None:
        raise ValidationError(SINGLE_LINE_MESSAGE, code="control_character", params={"code": code})


def validate_multi_line(value: str) -> None:
    """Django validator for text areas (descriptions, notes)."""
    code = control_character(value, multi_line=True)
    if code is not None:
        raise ValidationError(MULTI_LINE_MESSAGE, code="control_character", params={"code": code})
