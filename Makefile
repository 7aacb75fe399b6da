# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
# Everything lands in .venv inside the repository (never in the home directory).

PYTHON ?= python3
# The virtual environment lives in the repository, unless the repository is under the home
# directory: run as root, the embedded Postgres opens (o+x) every parent folder of its binaries,
# which live in the venv, so then the venv goes under /var/tmp instead.
ifeq ($(filter $(HOME)/%,$(CURDIR)),)
VENV   ?= .venv
else
VENV   ?= /var/tmp/agent-comms/$(shell printf '%s' '$(CURDIR)' | sha256sum | cut -c1-8)/venv
endif
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
IMAGE_TAG ?= dev

.PHONY: help venv run test lint unit integration bench images lint-images constraints clean

help:
	@echo "make run     start an embedded NATS, replay a recorded Codex run through the real publisher, show the result"
	@echo "make test    lint, type-check and run every test against real servers the tests start"
	@echo "make bench   publisher, ingest, backfill and web figures, each as a ratio to a ceiling measured"
	@echo "             in the same run (exit 1: a target failed; 2: the machine was too busy for a verdict)"
	@echo "make images  build the three images (needs a Docker engine)"

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: venv
	$(BIN)/agent-comms demo

LINT_PATHS := src tests $(wildcard bench)

lint: venv
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q --junitxml=test-output/junit.xml

unit: venv
	$(BIN)/pytest -q tests/unit

# Every benchmark runs even when an earlier one misses a target; the worst exit code wins.
bench: venv
	@status=0; \
	for b in publisher ingest web; do \
	  $(BIN)/python bench/$$b.py; rc=$$?; [ $$rc -gt $$status ] && status=$$rc; \
	done; exit $$status

lint-images: venv
	$(BIN)/hadolint images/publisher/Dockerfile images/backfill/Dockerfile jangar-consumer/Dockerfile

images:
	docker build -f images/publisher/Dockerfile -t agent-comms-publisher:$(IMAGE_TAG) .
	docker build -f images/backfill/Dockerfile -t agent-comms-backfill:$(IMAGE_TAG) .
	docker build -f jangar-consumer/Dockerfile -t jangar-consumer:$(IMAGE_TAG) .

# Re-pin every dependency (runtime and dev) from a clean environment; commit the result.
constraints:
	rm -rf /tmp/agent-comms-constraints && $(PYTHON) -m venv /tmp/agent-comms-constraints
	/tmp/agent-comms-constraints/bin/python -m pip install --quiet --upgrade pip
	/tmp/agent-comms-constraints/bin/python -m pip install --quiet -e '.[dev]'
	( echo "# Pinned versions for make test and the images; regenerate with: make constraints"; \
	  /tmp/agent-comms-constraints/bin/python -m pip freeze --exclude-editable | grep -v '^agent-comms' ) > constraints.txt

clean:
	rm -rf $(VENV) .run .bench test-output .pytest_cache .mypy_cache .ruff_cache
