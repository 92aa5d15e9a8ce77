# Kizuna: the two commands are `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
# pip, quiet; this machine's pip configuration may warn about find-links folders that do not exist.
PIP = bash scripts/pip.sh
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR := $(or $(KIZUNA_DATA_DIR),var)

.PHONY: run test bench check mutation messages translations contracts install install-dev clean

run: install messages
	@$(BIN)/kizuna migrate --no-input -v 0
	@$(BIN)/kizuna createcachetable -v 0
	@if [ ! -f "$(DATA_DIR)/.demo-loaded" ]; then \
		$(BIN)/kizuna demo && touch "$(DATA_DIR)/.demo-loaded"; \
	else \
		$(BIN)/kizuna demo --logins-only; \
	fi
	@exec $(BIN)/kizuna serve

test:
	@bash scripts/test.sh

bench: install-dev messages
	@KIZUNA_BENCH_QUICK=$(QUICK) bash scripts/bench.sh

check: install-dev messages
	@bash scripts/test.sh --checks-only

# Mutation testing of the modules that must not lose or leak data (docs/mutation.md); not part
# of `make test`. MODULES="sc-keys leases" runs some of them; MUTATION_TIMEOUT bounds each.
mutation: install-dev messages
	@$(BIN)/python scripts/mutation.py $(MODULES)

install: $(VENV)/.installed-base

install-dev: $(VENV)/.installed-dev

$(VENV)/bin/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
		echo "python3 -m venv failed: installing Debian's python3-venv"; \
		rm -rf $(VENV); apt-get install -y -q python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); }

$(VENV)/.installed-base: $(VENV)/bin/python requirements/build.txt requirements/base.txt pyproject.toml
	@echo "Installing pinned dependencies into $(VENV)"
	@$(PIP) --require-hashes -r requirements/build.txt
	@$(PIP) --require-hashes -r requirements/base.txt
	@$(PIP) --no-deps --no-build-isolation -e .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-base requirements/dev.txt
	@echo "Installing pinned test dependencies into $(VENV)"
	@$(PIP) --require-hashes -r requirements/base.txt -r requirements/dev.txt
	@touch $@

# Compiled catalogs (.mo) are build output: made from the committed .po files.
messages: install
	@command -v msgfmt >/dev/null || bash scripts/debian-packages.sh gettext
	@$(BIN)/python scripts/compile_messages.py

# After adding or changing translatable strings: update every catalog, then translate the new
# entries of the Japanese ones (`make test` fails while one is missing).
translations: install
	@command -v msgfmt >/dev/null || bash scripts/debian-packages.sh gettext
	@$(BIN)/python scripts/messages.py update

# After changing an API: write its OpenAPI document into kizuna/contracts/openapi/ (a test
# fails while the served document and the committed one differ); review the diff.
contracts: install
	@for api in crm survey; do \
		$(BIN)/kizuna export_openapi_schema --api kizuna.$$api.api.api.api --indent 2 --sorted \
			--output kizuna/contracts/openapi/$$api-v1.json || exit 1; \
		echo >> kizuna/contracts/openapi/$$api-v1.json; \
	done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
	find kizuna -name '*.mo' -delete
