# `make demo` and `make test` set everything up themselves (system packages included).
PYTHON ?= python3
STAMP := .make/installed
SOURCES := mesos_uri tests scripts

.PHONY: install test lint demo bench fuzz clean

install: $(STAMP)

$(STAMP): setup.cfg setup.py pyproject.toml scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@mkdir -p $(dir $@) && touch $@

test: install
	$(PYTHON) -m pytest

lint: install
	$(PYTHON) -m ruff check $(SOURCES)
	$(PYTHON) -m ruff format --check $(SOURCES)
	$(PYTHON) -m mypy --strict mesos_uri

demo: install
	$(PYTHON) scripts/demo.py

bench: install
	$(PYTHON) scripts/bench.py

fuzz: install
	$(PYTHON) scripts/fuzz.py

clean:
	rm -rf .make build *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
