"""Kizuna's message catalogs: bring them up to date with the code, or check they are complete.

  python scripts/messages.py update   add the code's new strings to every catalog
  python scripts/messages.py check    fail when a string of the code has no Japanese translation

Catalogs name files, not line numbers, and keep their creation date, so that two branches
that add strings to one catalog rarely touch the same lines.
"""

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KIZUNA = ROOT / "kizuna"
MAKEMESSAGES = [
    str(ROOT / ".venv" / "bin" / "kizuna"),
    "makemessages",
    "-l",
    "ja",
    "-l",
    "en",
    "--add-location",
    "file",
    "--no-wrap",
    "--no-obsolete",
    "-v",
    "0",
]
CREATION_DATE = re.compile(r'^"POT-Creation-Date: .*\\n"$', re.MULTILINE)
# makemessages marks a new catalog's header fuzzy (an unreviewed header, with Plural-Forms,
# that gettext tools may leave out); the header is ours, so update() clears the mark.
FUZZY_HEADER = re.compile(r'^#, fuzzy\nmsgid ""\nmsgstr ""$', re.MULTILINE)


def catalogs(tree: Path) -> list[Path]:
    return sorted(tree.rglob("locale/*/LC_MESSAGES/django.po"))


def update(tree: Path) -> None:
    """Run makemessages over `tree` (a kizuna package), keeping each catalog's header date."""
    dates = {}
    for po in catalogs(tree):
        found = CREATION_DATE.search(po.read_text(encoding="utf-8"))
        if found:
            dates[po] = found.group(0)
    subprocess.run(MAKEMESSAGES, cwd=tree, check=True)
    for po in catalogs(tree):
        text = FUZZY_HEADER.sub('msgid ""\nmsgstr ""', po.read_text(encoding="utf-8"), count=1)
        if po in dates:
            start, end = CREATION_DATE.search(text).span()  # type: ignore[union-attr]
            text = text[:start] + dates[po] + text[end:]
        po.write_text(text, encoding="utf-8")


def entries(text: str) -> list[str]:
    return [block for block in re.split(r"\n\s*\n", text) if "msgid" in block]


def problems(po: Path) -> list[str]:
    found = []
    for block in entries(po.read_text(encoding="utf-8")):
        if block.lstrip().startswith("#~"):
            continue  # obsolete entries are not used
        msgid = re.search(r'^msgid ((?:".*"\n?)+)', block, re.MULTILINE)
        if not msgid or msgid.group(1).strip() == '""':
            continue  # the header
        label = msgid.group(1).strip().splitlines()[0][:60]
        if re.search(r"^#,.*\bfuzzy\b", block, re.MULTILINE):
            found.append(f"fuzzy: {label}")
        translations = re.findall(r'^msgstr(?:\[\d\])? ((?:".*"\n?)+)', block, re.MULTILINE)
        if not translations or any("".join(re.findall(r'"(.*)"', t)) == "" for t in translations):
            found.append(f"no translation: {label}")
    return found


def check() -> int:
    """Update a copy of the catalogs from the code and report every untranslated string:
    a string added to the code but not to the catalogs shows up here too."""
    with tempfile.TemporaryDirectory() as temporary:
        copy = Path(temporary) / "kizuna"
        shutil.copytree(KIZUNA, copy, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
        update(copy)
        ja = [po for po in catalogs(copy) if po.parts[-3] == "ja"]
        bad = 0
        for po in catalogs(KIZUNA):  # as committed: the copy's headers were just mended
            if FUZZY_HEADER.search(po.read_text(encoding="utf-8")):
                print(f"{po.relative_to(ROOT)}: fuzzy header (run `make translations`)")
                bad += 1
        for po in ja:
            for problem in problems(po):
                print(f"kizuna/{po.relative_to(copy)}: {problem}")
                bad += 1
    if bad:
        print(f"{bad} Japanese translation(s) missing or fuzzy: run `make translations`.")
        return 1
    print(f"Japanese catalogs complete ({len(ja)} catalogs).")
    return 0


def main(argv: list[str]) -> int:
    if argv == ["update"]:
        update(KIZUNA)
        return 0
    if argv == ["check"]:
        return check()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
