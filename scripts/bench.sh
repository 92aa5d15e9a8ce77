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
timing=$(mktemp)
cpu_total=0
TIMEFORMAT='%U %S'

for script in bench/*.py; do
    [ -e "$script" ] || continue
    case "$(basename "$script")" in _*) continue ;; esac
    # A module other scripts serve (the baseline WSGI app) is no benchmark.
    grep -q '^if __name__ == "__main__":' "$script" || continue
    printf '\n==> %s (%s)\n' "$script" "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
    began=$SECONDS
    # The CPU of the script and of every process it waited for (servers, workers, children;
    # not PostgreSQL's): on a loaded machine the wall time says more about the others.
    { time .venv/bin/python "$script" "$@" 2>&3; } 3>&2 2>"$timing"
    ok=$?
    read -r user system <"$timing" || { user=0; system=0; }
    cpu=$(awk -v u="$user" -v s="$system" 'BEGIN { printf "%.0f", u + s }')
    cpu_total=$(awk -v t="$cpu_total" -v u="$user" -v s="$system" 'BEGIN { print t + u + s }')
    if [ $ok -eq 0 ]; then
        summary+=("$(printf '%5d s %5s s  %s' $((SECONDS - began)) "$cpu" "$script")")
        printf '<== %s: %d s (CPU %s s)\n' "$script" $((SECONDS - began)) "$cpu"
    else
        summary+=("$(printf '%5d s %5s s  %s FAILED' $((SECONDS - began)) "$cpu" "$script")")
        echo "FAILED: $script" >&2
        status=1
    fi
done
rm -f "$timing"
printf '\n wall    CPU\n'
printf '%s\n' "${summary[@]}"
printf '%5d s %5.0f s  in all (load average at the end: %s)\n' $((SECONDS - started)) \
    "$cpu_total" "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
exit $status
