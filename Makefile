# `make run` and `make test` work on a fresh machine: they build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv sandbox-tools run test lint typecheck pytest bench clean

$(BIN)/rewind: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/rewind

venv: $(BIN)/rewind

# The agent sandbox's programs (docs: README "Security model"): installed with apt when root,
# else named. Without them `rewind serve` refuses to start unless the config says sandbox = "none".
SANDBOX_TOOLS := bwrap:bubblewrap slirp4netns:slirp4netns nft:nftables nsenter:util-linux ip:iproute2
sandbox-tools:
	@PATH="$$PATH:/usr/sbin:/sbin"; missing=""; \
	for pair in $(SANDBOX_TOOLS); do \
		command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		else \
			echo "the agent sandbox needs these packages:$$missing" >&2; exit 1; \
		fi; \
	fi

run: venv sandbox-tools
	$(BIN)/rewind serve --data-dir data $(if $(CONFIG),--config $(CONFIG))

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

pytest: venv sandbox-tools  # two workers: most tests wait on real processes, disks and sockets
	$(BIN)/pytest -n 2 --dist loadgroup

test: lint typecheck pytest

bench: venv
	$(BIN)/rewind bench log --json

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
