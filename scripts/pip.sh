#!/usr/bin/env bash
# `pip install -q` in the virtualenv, without the warnings some machines' pip configuration
# prints for missing find-links folders; pip's own exit status is kept.
set -o pipefail
.venv/bin/pip install -q --disable-pip-version-check "$@" 2>&1 | { grep -v "^WARNING: Location '.*' is ignored" || true; }
