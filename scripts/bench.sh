#!/usr/bin/env bash
# `make bench`: every benchmark under bench/, one after the other. Never part of `make test`.
# Each records its figures (bench/_harness.py: record()) in docs/benchmarks.json, or with
# QUICK=1 (small sizes) in var/benchmarks-quick.json. Files under bench/
# whose names start with `_`, or that cannot run as a script, are helpers, not benchmarks.
set -uo pipefail
cd "$(dirname "$0")/.."
export KIZUNA_BENCH_RECORD=1
export KIZUNA_SECRET_KEY="${KIZUNA_SECRET_KEY:-bench-secret-key-not-for-production-0123456789-abcdefghij}"
status=0
started=$SECONDS
summary=()
for script in bench/*.py; do
    [ -e "$script" ] || continue
    case "$(basename "$script")" in _*) continue ;; esac
    # A module other scripts serve (the baseline WSGI app) is no benchmark.
    grep -q '^if __name__ == "__main__":' "$script" || continue
    printf '\n==> %s (%s)\n' "$script" "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
    began=$SECONDS
    if .venv/bin/python "$script" "$@"; then
        summary+=("$(printf '%5d s  %s' $((SECONDS - began)) "$script")")
        printf '<== %s: %d s\n' "$script" $((SECONDS - began))
    else
        summary+=("$(printf '%5d s  %s FAILED' $((SECONDS - began)) "$script")")
        echo "FAILED: $script" >&2
        status=1
    fi
done
printf '\n'
printf '%s\n' "${summary[@]}"
printf '%5d s  in all\n' $((SECONDS - started))
exit $status
