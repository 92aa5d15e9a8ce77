#!/usr/bin/env bash
# `make bench`: every benchmark under bench/, one after the other. Never part of `make test`.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
for script in bench/*.py; do
    [ -e "$script" ] || continue
    case "$(basename "$script")" in _*) continue ;; esac
    printf '\n==> %s\n' "$script"
    .venv/bin/python "$script" "$@" || { echo "FAILED: $script" >&2; status=1; }
done
exit $status
