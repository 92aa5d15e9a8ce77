"""The `kizuna` command: every Django management command, plus serve, worker and demo."""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kizuna.settings")
    arguments = ["kizuna", *(sys.argv[1:] if argv is None else argv)]
    from kizuna.config import ConfigError

    try:
        import django

        django.setup()
    except ConfigError as error:
        sys.stderr.write(f"kizuna: configuration error: {error}\n")
        raise SystemExit(2) from None

    from django.core.management import execute_from_command_line

    execute_from_command_line(arguments)
