# Two commands do all the set-up: `make demo` (the main job on the embedded stack) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHECKOV := .venv-checkov/bin/checkov
LIFETIMES := .venv-lifetimes/bin/python
# make bench SEGMENT_SIZES="100000 1000000" adds the 1M-profile segment run (several minutes more)
SEGMENT_SIZES ?= 100000

.PHONY: demo test bench bench-upsert bench-segment-runs local clean sam-build checkov chromium

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/crm demo

test: $(STAMP) $(CHECKOV) chromium
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/mypy bench
	$(MAKE) checkov
	$(BIN)/python -m pytest -n 2 tests

bench: $(STAMP) $(LIFETIMES)
	$(BIN)/python bench/ingest_path.py
	$(MAKE) --no-print-directory -j2 --output-sync=target bench-upsert bench-segment-runs
	$(BIN)/python bench/segments.py --sizes $(SEGMENT_SIZES)
	$(BIN)/python bench/flows.py
	$(BIN)/python bench/backtest.py
	$(BIN)/python bench/cold_start.py
	$(BIN)/python bench/predictions.py
	$(BIN)/python bench/affinity.py
	$(BIN)/python bench/console_customer.py
	$(BIN)/python bench/cost.py

# Scripts whose figures are counted requests (their times are moto's, compared only within the script) share the
# machine's two cores; those that time against another tool or a deadline run alone. Each report prints whole.
bench-upsert: $(STAMP)
	$(BIN)/python bench/profile_events.py

bench-segment-runs: $(STAMP)
	$(BIN)/python bench/segment_runs.py
	$(BIN)/python bench/predictions_requests.py

# The console's browser tests drive the system's Chromium through Playwright (tests/e2e/test_console.py), never a
# browser Playwright would download: root installs Debian's package; anyone else is told how, and the tests skip
# saying why.
chromium:
	@test -n "$$CHROMIUM" || command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium for the console's browser tests"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || \
	  echo "make test: apt-get could not install chromium, so the console's browser tests will be skipped."; \
	else \
	  echo "make test: no Chromium found, so the console's browser tests will be skipped."; \
	  echo "  Install it with: sudo apt-get install chromium   (or set CHROMIUM=/path/to/chromium)"; \
	fi

local: $(STAMP)
	$(BIN)/crm local --port 8000 --aws-port 5001

clean:
	rm -rf $(VENV) .venv-sam .venv-checkov .venv-lifetimes .aws-sam .pytest_cache .mypy_cache .ruff_cache

# The SAM CLI pins many packages, so it gets a virtualenv of its own; it needs python3.12 on PATH.
.venv-sam/bin/sam:
	$(PYTHON) -m venv .venv-sam
	.venv-sam/bin/python -m pip install --quiet aws-sam-cli

sam-build: .venv-sam/bin/sam
	.venv-sam/bin/sam build

# checkov pins an older boto3 (and much else) than the project needs, so it gets a virtualenv of its own too.
# Every check it skips is named, with its reason, in the resource's Metadata (docs/least-privilege.md).
$(CHECKOV):
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install --quiet checkov==3.3.30

checkov: $(CHECKOV)
	$(CHECKOV) --quiet --compact --framework cloudformation -f template.yaml

# bench/predictions.py times ours against the lifetimes package (0.11.3, 2020), which is no dependency of the
# project: it gets a virtualenv of its own, as checkov does.
$(LIFETIMES):
	$(PYTHON) -m venv .venv-lifetimes
	.venv-lifetimes/bin/python -m pip install --quiet lifetimes==0.11.3 'numpy>=2,<3' 'pandas>=2,<4'
