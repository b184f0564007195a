# `make demo` and `make test` set everything up themselves: system packages, then a virtual
# environment in the checkout (.venv), so that a system Python that refuses `pip install`
# (Debian 12, Ubuntu 23.04 and later) works as well as any other.
SYSTEM_PYTHON ?= python3
VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := .make/installed
SOURCES := mesos_uri tests scripts

.PHONY: install test lint demo bench fuzz clean

install: $(STAMP)

$(STAMP): setup.cfg setup.py pyproject.toml scripts/install-system-deps.sh
	SYSTEM_PYTHON=$(SYSTEM_PYTHON) bash scripts/install-system-deps.sh
	@test -x $(PYTHON) || $(SYSTEM_PYTHON) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check \
		--config-settings editable_mode=compat -e '.[test]'
	@mkdir -p $(dir $@) && touch $@

test: install
	$(PYTHON) -m pytest

lint: install
	$(PYTHON) -m ruff check $(SOURCES)
	$(PYTHON) -m ruff format --check $(SOURCES)
	$(PYTHON) -m mypy --strict mesos_uri tests scripts/bench.py scripts/demo.py scripts/fuzz.py

demo: install
	$(PYTHON) scripts/demo.py

# Options pass through: make bench BENCH_ARGS='--quick --check'
bench: install
	@# As an installed package is: byte-compiled (the editable install is not).
	$(PYTHON) -m compileall -q mesos_uri
	$(PYTHON) scripts/bench.py $(BENCH_ARGS)

# Options pass through: make fuzz FUZZ_ARGS='--seconds 10 --target uri'
fuzz: install
	$(PYTHON) scripts/fuzz.py $(FUZZ_ARGS)

clean:
	rm -rf .make $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
