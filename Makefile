# The README's two commands: `make run` (set up and run the app) and `make test` (set up and run every test).
# `make run PORT=8080` (or PORT in the environment) serves on another port; APP_URL follows it unless set.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

.PHONY: setup run test bench
setup: $(BIN)/.installed

run: setup
	$(BIN)/saleor-vtmarketing serve$(if $(PORT), --port $(PORT))

test: setup
	$(BIN)/pytest -q

bench: setup
	$(BIN)/python bench/run_all.py
