"""Fail when a Japanese catalog has an empty or fuzzy translation."""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
            found.append(f"empty: {label}")
    return found


def main() -> int:
    catalogs = sorted((ROOT / "kizuna").rglob("locale/ja/LC_MESSAGES/django.po"))
    bad = 0
    for po in catalogs:
        for problem in problems(po):
            print(f"{po.relative_to(ROOT)}: {problem}")
            bad += 1
    if bad:
        print(f"{bad} Japanese translation(s) missing or fuzzy.")
        return 1
    print(f"Japanese catalogs complete ({len(catalogs)} catalogs).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
