# Two commands on a fresh machine: `make run` and `make test`.
# Each creates .venv when it is missing and installs what it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench reference clean demo

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
	$(VENV)/bin/survey run parameters/demo.yaml
	@echo "reports: outputs/demo/*.html   tables: outputs/demo/indicators.csv, outputs/demo/*.xlsx"

demo: $(STAMP)
	$(PY) -m survey.cli demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

test: $(STAMP) lint
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) benchmarks/bench_engine.py

# Regenerate the R reference fixtures (needs R and r-cran-survey; CI does not).
reference:
	Rscript tests/reference/make_reference.R

clean:
	rm -rf $(VENV) .pytest_cache outputs
