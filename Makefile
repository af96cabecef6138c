# Two commands for a fresh machine: `make report` and `make test`. Each creates .venv
# when missing and installs with -c constraints.txt (torch==2.13.0, the local CPU wheel).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

export MPLBACKEND := agg

.PHONY: report test bench lint clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

report: $(STAMP)
	$(VENV)/bin/gradsight lab --quick --out report
	@echo "open report/index.html"

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -n 2 --dist loadfile -q

bench: $(STAMP)
	$(PY) benchmarks/monitor_overhead.py --steps 300 --floor --fixed
	$(PY) benchmarks/activation_cost.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) report .pytest_cache
