#!/usr/bin/env bash
# `make test`: installs what the tests need, runs the static checks, then the whole
# suite on SQLite and, when reachable, on PostgreSQL. Ends with what it tested with.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
CHECKS_ONLY=0
[ "${1:-}" = "--checks-only" ] && CHECKS_ONLY=1

step() { printf '\n==> %s\n' "$*"; }
fail() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }

step "Debian packages the tests need (chromium, gettext, fonts-noto-cjk)"
bash scripts/debian-packages.sh chromium gettext fonts-noto-cjk \
    || echo "WARNING: could not install the Debian packages; browser tests will be skipped." >&2

step "Python dependencies"
make -s install-dev || fail "installing the pinned dependencies"
make -s messages || fail "compiling the message catalogs"

# Tests use their own data dir: a developer's var/ (database, mailbox) is never touched.
export KIZUNA_DATA_DIR="${KIZUNA_TEST_DATA_DIR:-$(mktemp -d /tmp/kizuna-test-XXXXXX)}"
export KIZUNA_SECRET_KEY="test-secret-key-for-the-suite-only-0123456789-abcdefghij"
unset KIZUNA_SMTP_HOST KIZUNA_SERVICES

step "ruff"
$BIN/ruff check . || fail "ruff check"
$BIN/ruff format --check . || fail "ruff format --check (run: .venv/bin/ruff format .)"
step "mypy (django-stubs)"
$BIN/mypy kizuna || fail "mypy"
step "import-linter (crm and survey independent, lib imports no app)"
$BIN/lint-imports || fail "import-linter"
step "migrations are up to date"
env -u DATABASE_URL $BIN/kizuna makemigrations --check --dry-run || fail "makemigrations --check"
step "Django's deployment checks pass with production-like settings (https, generated key)"
env -u DATABASE_URL -u KIZUNA_SECRET_KEY KIZUNA_DATA_DIR="$(mktemp -d /tmp/kizuna-deploy-XXXXXX)" \
    KIZUNA_BASE_URL=https://kizuna.example.com KIZUNA_ALLOWED_HOSTS=kizuna.example.com \
    KIZUNA_SMTP_HOST=smtp.example.com KIZUNA_SMTP_SECURITY=starttls \
    $BIN/kizuna check --deploy --fail-level WARNING || fail "kizuna check --deploy"
step "every string of the code has its Japanese translation"
$BIN/python scripts/messages.py check || fail "Japanese catalogs"
[ $CHECKS_ONLY -eq 1 ] && exit 0

WORKERS="${KIZUNA_TEST_WORKERS:-2}"
PYTEST=($BIN/pytest -n "$WORKERS" --dist loadfile -q -ra)

step "pytest on SQLite"
env -u DATABASE_URL "${PYTEST[@]}" || fail "pytest on SQLite"
tested=("SQLite $($BIN/python -c 'import sqlite3; print(sqlite3.sqlite_version)')")

POSTGRES_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
if $BIN/python - "$POSTGRES_URL" <<'PY'
import sys, psycopg
try:
    psycopg.connect(sys.argv[1].replace("postgres://", "postgresql://", 1), connect_timeout=3).close()
except Exception as error:
    print(f"PostgreSQL not reachable at {sys.argv[1]}: {error}", file=sys.stderr)
    sys.exit(1)
PY
then
    step "pytest on PostgreSQL ($POSTGRES_URL)"
    DATABASE_URL="$POSTGRES_URL" KIZUNA_TEST_RUN="${KIZUNA_TEST_RUN:-ci}" "${PYTEST[@]}" \
        || fail "pytest on PostgreSQL"
    tested+=("PostgreSQL $($BIN/python - "$POSTGRES_URL" <<'PY'
import sys, psycopg
with psycopg.connect(sys.argv[1].replace("postgres://", "postgresql://", 1)) as c:
    print(c.execute("show server_version").fetchone()[0])
PY
)")
    postgres_ok=1
else
    postgres_ok=0
fi

echo
echo "================================================================"
echo "Databases tested: ${tested[*]}"
if [ -x /usr/bin/chromium ]; then
    echo "Browser tested:   $(/usr/bin/chromium --version 2>/dev/null | head -1) (Playwright, headless)"
else
    echo "!!! Browser NOT tested: /usr/bin/chromium is missing, browser tests were SKIPPED !!!"
fi
if [ $postgres_ok -eq 0 ]; then
    echo "!!! PostgreSQL NOT tested: no server reachable (set DATABASE_URL) !!!"
fi
echo "================================================================"
