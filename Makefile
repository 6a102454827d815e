# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= test,ray

.PHONY: demo test lint venv clean bench

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# torch==2.13.0 first: a CPU build on this machine's disk (a looser pin pulls CUDA).
# The toy-kinds fixture package declares a `brickwork.kinds` entry point; the
# portability tests load its modules in fresh interpreters through it.
$(STAMP): $(BIN)/python pyproject.toml tests/fixtures/brickwork_toykinds/pyproject.toml
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	$(BIN)/python -m pip install -q -e tests/fixtures/brickwork_toykinds
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/brickwork demo

# Lint and type checks (configuration in pyproject.toml), run by `make test` first.
LINT_PATHS := src tests bench
lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy

test: $(STAMP) lint
	BRICKWORK_CHECK=1 $(BIN)/python -m pytest tests --doctest-modules src/brickwork

bench: $(STAMP)
	for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f --quick || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
