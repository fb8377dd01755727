# Front door. `make run` = whole pipeline on data/raw/; `make test` = whole test suite.
# Both create .venv and install the locked dependencies first (idempotent).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast lint setup lock bench

setup: $(STAMP)

# --no-deps: the lock is the full closure; it deliberately omits BERTopic's
# sentence-transformers/torch chain (see requirements.in).
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip==25.3" "setuptools==80.9.0" "wheel==0.45.1"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

export PATH := $(CURDIR)/$(BIN):$(PATH)

run: $(STAMP)
	@test -d .dvc || $(BIN)/dvc init --quiet
	$(BIN)/dvc repro

test: lint
	$(BIN)/python -m pytest

# ruff (configured in pyproject.toml, pinned in the lock); `make test` runs it first
lint: $(STAMP)
	$(BIN)/ruff check .

# Edit loop: unit tests on tiny inputs, no model loads (< 30 s); see tests/conftest.py.
test-fast: $(STAMP)
	POLICY_TOPICS_TEST_FAST=1 $(BIN)/python -m pytest -q -m "not slow and not browser" -p no:randomly

# 1x and 5x Tokyo + the incremental step + parse vs plain GiNZA (~35 min on 2 cores); both cores,
# raised priority where allowed (root; own session so the autogroup nice applies to this run only),
# as the figures in benchmarks/README.md were measured.
bench: $(STAMP)
	setsid -w $(BIN)/python benchmarks/pipeline.py --replicate 1,5 --n-workers 2 --nice -5

# Re-resolve the lock from requirements.in in a throwaway venv.
lock:
	rm -rf /tmp/policy-topics-lock && $(PYTHON) -m venv /tmp/policy-topics-lock
	/tmp/policy-topics-lock/bin/pip install --quiet --no-deps bertopic==0.17.4
	grep -v '^bertopic' requirements.in | /tmp/policy-topics-lock/bin/pip install --quiet -r /dev/stdin
	/tmp/policy-topics-lock/bin/pip freeze --exclude-editable | sort -f > requirements.lock
