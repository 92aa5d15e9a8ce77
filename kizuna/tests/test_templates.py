"""Every template as Django reads it."""

from __future__ import annotations

import re
from pathlib import Path

import kizuna

# `{# ... #}` ends on its own line: one left open is not a comment but text on the page.
OPEN_COMMENT = re.compile(r"\{#(?!.*#\})")


def test_no_template_comment_spans_lines_and_shows_on_the_page() -> None:
    root = Path(kizuna.__file__).parent
    open_comments = [
        f"{path.relative_to(root)}:{number}"
        for path in sorted([*root.rglob("*.html"), *root.rglob("*.txt")])
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if OPEN_COMMENT.search(line)
    ]

    assert open_comments == []
