# Quick start: `make run` starts the proxy on 127.0.0.1:8080, `make test` runs the whole suite.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Find an interpreter >= 3.12: python3.13, python3.12, python3, then any pyenv-installed one.
PYTHON ?= $(shell for c in python3.13 python3.12 python3 $$(ls -d $$HOME/.pyenv/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV); do \
	  if command -v $$c >/dev/null 2>&1 && $$c -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then echo $$c; break; fi; done)

.PHONY: run test lint typecheck unit bench bench-smoke clean

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON)" ]; then echo "make: no Python >= 3.12 found (tried python3.13, python3.12, python3, ~/.pyenv/versions/3.12+)" >&2; exit 2; fi
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/socialgate run --policy policies/policy.yaml --audit-log logs/audit.jsonl \
		--listen-host 127.0.0.1 --listen-port 8080

lint: $(STAMP)
	$(VENV)/bin/ruff check proxy_addons tests bench
	$(VENV)/bin/ruff format --check proxy_addons tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: $(STAMP) lint typecheck
	$(PY) -m pytest -q tests

bench: $(STAMP)
	$(PY) bench/run.py

bench-smoke: $(STAMP)
	$(PY) bench/run.py --smoke

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
