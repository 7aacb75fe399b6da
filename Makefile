# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
# Everything lands in .venv inside the repository (never in the home directory).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
IMAGE_TAG ?= dev

.PHONY: help venv run test lint unit integration bench images lint-images clean

help:
	@echo "make run     start an embedded NATS, replay a recorded Codex run through the real publisher, show the result"
	@echo "make test    lint, type-check and run every test against real servers the tests start"
	@echo "make bench   measure the publisher against the fastest raw Python publish (figures as ratios)"
	@echo "make images  build the three images (needs a Docker engine)"

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: venv
	$(BIN)/agent-comms demo

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q --junitxml=test-output/junit.xml

unit: venv
	$(BIN)/pytest -q tests/unit

bench: venv
	$(BIN)/python bench/publisher.py

lint-images: venv
	$(BIN)/hadolint images/publisher/Dockerfile images/backfill/Dockerfile jangar-consumer/Dockerfile

images:
	docker build -f images/publisher/Dockerfile -t agent-comms-publisher:$(IMAGE_TAG) .
	docker build -f images/backfill/Dockerfile -t agent-comms-backfill:$(IMAGE_TAG) .
	docker build -f jangar-consumer/Dockerfile -t jangar-consumer:$(IMAGE_TAG) .

clean:
	rm -rf $(VENV) .run .bench test-output .pytest_cache .mypy_cache .ruff_cache
