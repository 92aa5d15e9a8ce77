"""Compile every committed .po catalog of Kizuna into .mo, only when it changed."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    failed = False
    for po in sorted((ROOT / "kizuna").rglob("locale/*/LC_MESSAGES/*.po")):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        result = subprocess.run(
            ["msgfmt", "--check-format", "-o", str(mo), str(po)], capture_output=True, text=True
        )
        if result.returncode:
            failed = True
            sys.stderr.write(f"{po.relative_to(ROOT)}: {result.stderr}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
