# Two commands on a fresh machine: `make run` and `make test`.
# Each creates .venv when it is missing and installs what it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench reference clean demo dashboard browser axe

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev,dask]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (survey workbench)" >/dev/null
	touch $(STAMP)

# the main job: the synthetic national survey (generated once), then the demo batch run
run: $(STAMP)
	test -f data/synthetic/households.sav || $(VENV)/bin/survey synth --out data/synthetic --households 5000 --seed 1
	test -f data/synthetic-year2/households.sav || $(VENV)/bin/survey synth --out data/synthetic-year2 --households 5000 --seed 2
	test -f data/synthetic-evaluation/pooled.csv || $(VENV)/bin/python -m survey.evaluation --out data/synthetic-evaluation
	$(VENV)/bin/survey batch parameters/demo.yaml parameters/synthetic-two-waves.yaml \
	  parameters/synthetic-regional.yaml parameters/synthetic-evaluation.yaml --jobs 2
	@echo "tables: outputs/<run>/indicators.csv and .xlsx (two waves: comparison.csv, trend.csv; small areas: small_areas.csv; evaluation: evaluation.csv, cost_benefit.csv); dashboards: make dashboard"

demo: $(STAMP)
	$(PY) -m survey.cli demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

test: $(STAMP) lint browser axe
	$(PY) -m pytest -q

# Headless Chromium for the dashboard browser tests: Debian's package through apt-get when it is
# missing (never a browser download by playwright). Not root and no password-less sudo: say so,
# the browser tests then skip (CI sets SURVEY_REQUIRE_BROWSER=1, so there they would fail).
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ ! -x "$(CHROMIUM)" ] && command -v apt-get >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	  else echo "make: $(CHROMIUM) is missing and installing it needs root (apt-get install chromium); the browser tests will skip"; exit 0; fi; \
	  echo "make: installing chromium with apt-get (browser tests)"; \
	  ($$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null) \
	    || echo "make: apt-get could not install chromium; the browser tests will skip"; \
	fi

# axe-core (npm registry, pinned in tests/js/package.json) for the accessibility checks of the
# browser tests; offline or without npm: say so, those checks then skip.
axe:
	@test -f tests/js/node_modules/axe-core/axe.min.js || { command -v npm >/dev/null 2>&1 \
	  && (cd tests/js && npm install --no-audit --no-fund --silent) \
	  || echo "make: could not install axe-core with npm (offline?); the accessibility checks will skip"; }

# Serve the dashboards (dashboards/*.ipynb) on http://127.0.0.1:8866 from outputs/ (`make run`
# first if there is no run yet). Options: make dashboard ARGS="--port 0 --language fr".
dashboard: $(STAMP)
	test -f outputs/demo/manifest.json -a -f outputs/synthetic-two-waves/manifest.json || $(MAKE) run
	$(VENV)/bin/survey dashboard $(ARGS)

bench: $(STAMP)
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) benchmarks/bench_engine.py

# Regenerate the R reference fixtures (needs R and r-cran-survey; CI does not).
reference:
	Rscript tests/reference/make_reference.R

clean:
	rm -rf $(VENV) .pytest_cache outputs
