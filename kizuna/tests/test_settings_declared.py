"""Every setting declared once: what the code reads is in the README table and .env.example.

A KIZUNA_* name anywhere in the code (kizuna/, scripts/, bench/, the Makefile) is a
variable of the environment, parsed by kizuna/config.py at start-up and named in
settings.py; people find it in the README's configuration table and in .env.example.
"""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import global_settings

ROOT = Path(__file__).resolve().parents[2]
# Not inside a longer name: the header X-Kizuna-Trust is HTTP_X_KIZUNA_TRUST to Django.
NAME = re.compile(r"(?<![A-Za-z0-9_])KIZUNA_[A-Z0-9_]*[A-Z0-9]")
BINARY_SUFFIXES = {".mo", ".png", ".ico", ".woff", ".woff2", ".sqlite3", ".pyc"}


def code_files() -> list[Path]:
    files = [ROOT / "Makefile"]
    for folder in ("kizuna", "scripts", "bench"):
        files += [
            path
            for path in (ROOT / folder).rglob("*")
            if path.is_file()
            and path.suffix not in BINARY_SUFFIXES
            and "__pycache__" not in path.parts
            # This file names variables to test the scan itself.
            and path != Path(__file__).resolve()
        ]
    return files


def names_in_code() -> dict[str, set[Path]]:
    """Each KIZUNA_* name with the files that use it."""
    found: dict[str, set[Path]] = {}
    for path in code_files():
        for name in NAME.findall(path.read_text(encoding="utf-8")):
            found.setdefault(name, set()).add(path.relative_to(ROOT))
    return found


def readme_configuration_table() -> set[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in NAME.findall(row.split(" | ")[0])}


def env_example() -> set[str]:
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    return set(re.findall(r"^#?(KIZUNA_[A-Z0-9_]+)=", text, flags=re.MULTILINE))


def test_every_kizuna_variable_of_the_code_is_in_the_readme_configuration_table() -> None:
    documented = readme_configuration_table()

    missing = {name: paths for name, paths in names_in_code().items() if name not in documented}

    assert missing == {}


def test_every_kizuna_variable_of_the_code_is_in_env_example() -> None:
    listed = env_example()

    missing = {name: paths for name, paths in names_in_code().items() if name not in listed}

    assert missing == {}


def test_the_readme_table_and_env_example_list_only_variables_the_code_reads() -> None:
    used = set(names_in_code())

    assert readme_configuration_table() - used == set()
    assert env_example() - used == set()


def test_the_scan_finds_the_variables_of_settings_scripts_and_makefile() -> None:
    names = names_in_code()

    assert Path("kizuna/settings.py") in names["KIZUNA_SURVEY_SUBMIT_RATE"]
    assert names["KIZUNA_TEST_WORKERS"] == {Path("scripts/test.sh")}
    assert Path("Makefile") in names["KIZUNA_DATA_DIR"]
    assert "KIZUNA_TRUST" not in names


def test_settings_are_read_as_attributes_never_through_getattr_with_a_default() -> None:
    getattr_call = re.compile(r"getattr\(\s*settings\s*,\s*[\"']([A-Z0-9_]+)[\"']")
    offending = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / "kizuna").rglob("*.py")
        for name in getattr_call.findall(path.read_text(encoding="utf-8"))
        # Django's own optional settings are the one exception.
        if not hasattr(global_settings, name)
    ]

    assert offending == []
