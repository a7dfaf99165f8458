# One entry point for people and CI. `make demo` and `make check` are the README's quickstart.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: install browser demo serve check lint test test-fast clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# the CPU build first: a bare torch requirement would pull a multi-GB CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	# the extras too (frameworks' retrievers, Ray), so that all of it is type-checked and tested
	$(BIN)/python -m pip install -q -e ".[dev,langchain,llamaindex,ray]"
	touch $@

install: $(BIN)/.installed

demo: install  ## set up, index the shipped seeds, ask one German and one English question
	$(BIN)/findling index seeds/
	$(BIN)/findling search "Wie viele Zivilisten starben im August?" -k 3
	$(BIN)/findling search "What is Zelensky hoping for?" -k 3

serve: install  ## serve the API for the index on http://127.0.0.1:8000 (docs at /docs)
	$(BIN)/findling serve

# the browser tests drive Debian's Chromium; Playwright never downloads a browser here
browser:
	@test -x /usr/bin/chromium || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y chromium; }

check: install browser lint test  ## everything CI runs

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install  ## every tier: fast, slow, real-model and Ray (an empty -m selects all)
	HF_HUB_OFFLINE=1 $(BIN)/pytest -m ""

test-fast: install  ## the fast tier only (hashing embedder)
	$(BIN)/pytest

clean:
	rm -rf $(VENV) index/ .pytest_cache .mypy_cache .ruff_cache
