# `make run` and `make test` work on a fresh machine: they build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv run test lint typecheck pytest bench clean

$(BIN)/rewind: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/rewind

venv: $(BIN)/rewind

run: venv
	$(BIN)/rewind serve --data-dir data $(if $(CONFIG),--config $(CONFIG))

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

pytest: venv  # two workers: most tests wait on real processes, disks and sockets
	$(BIN)/pytest -n 2

test: lint typecheck pytest

bench: venv
	$(BIN)/rewind bench log --json

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
