# Quick start: `make run` starts the proxy on 127.0.0.1:8080, `make test` runs the whole suite.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Find an interpreter >= 3.12: python3.13, python3.12, python3, then any pyenv-installed one.
PYTHON ?= $(shell for c in python3.13 python3.12 python3 $$(ls -d $$HOME/.pyenv/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV); do \
	  if command -v $$c >/dev/null 2>&1 && $$c -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then echo $$c; break; fi; done)

.PHONY: run test lint typecheck unit bench bench-smoke soak clean system-deps

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON)" ]; then echo "make: no Python >= 3.12 found (tried python3.13, python3.12, python3, ~/.pyenv/versions/3.12+)" >&2; exit 2; fi
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# Debian packages the tests run for real: chromium (the investigation report is checked in a
# headless browser), haproxy (the scale-out test puts two workers behind it, as
# deploy/haproxy.cfg does) and rsyslog (checkpoints shipped to a syslog collector). Installed
# only when missing, so `make test` stays quick.
SYSTEM_DEPS := chromium:chromium haproxy:haproxy rsyslog:rsyslogd

system-deps:
	@missing=""; for dep in $(SYSTEM_DEPS); do pkg=$${dep%%:*}; cmd=$${dep#*:}; \
	  command -v $$cmd >/dev/null 2>&1 || [ -x /usr/sbin/$$cmd ] || missing="$$missing $$pkg"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "make: installing$$missing (Debian) for the tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $$missing >/dev/null) || { echo "make: apt-get install$$missing failed" >&2; exit 2; }; \
	else echo "make: missing Debian package(s)$$missing: install them (as root)" >&2; exit 2; fi

# `make run PORT=3128` (and HOST=…) to listen elsewhere.
PORT ?= 8080
HOST ?= 127.0.0.1

run: $(STAMP)
	$(VENV)/bin/socialgate run --policy policies/policy.yaml --audit-log logs/audit.jsonl \
		--listen-host $(HOST) --listen-port $(PORT)

lint: $(STAMP)
	$(VENV)/bin/ruff check proxy_addons tests bench
	$(VENV)/bin/ruff format --check proxy_addons tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: $(STAMP) system-deps lint typecheck
	$(PY) -m pytest -q tests

bench: $(STAMP)
	$(PY) bench/run.py
	$(PY) bench/fault_soak.py

# 10 minutes under faults (kill -9, full audit disk, policy rewrites, SIGHUPs); also in `make bench`.
soak: $(STAMP)
	$(PY) bench/fault_soak.py

bench-smoke: $(STAMP)
	$(PY) bench/run.py --smoke

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
