# Two commands set everything up on a machine with Python >= 3.11:
#   make demo   create .venv, install ildstudy, run the demo study, print where the report is
#   make test   same venv, install the test extras, run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
OUT    ?= demo-output

.PHONY: demo test install clean bench

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit("ildstudy needs Python >= 3.11, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/ildstudy demo --out $(OUT)
	@echo
	@echo "Demo outputs are in $(CURDIR)/$(OUT)/"
	@if [ -f $(OUT)/report.html ]; then echo "Open the report: $(CURDIR)/$(OUT)/report.html"; fi

# Two worker processes (pytest-xdist): the suite is CPU-bound and this machine has two cores; PYTEST_WORKERS=0 runs it
# in one process (e.g. to debug a failure).
PYTEST_WORKERS ?= 2
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS)

bench: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	@echo "See benchmarks/README.md for the individual benchmark scripts."

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache build *.egg-info src/*.egg-info
