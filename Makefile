# Quick start:  make book   (build the whole book, executing every chapter)
#               make test   (run all tests)
# Both create the virtual environment .venv on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch is pinned so that a CPU-only machine gets the CPU wheel (and pip does not pick a
# multi-GB CUDA build); any torch >= 2.2 works with the package.
TORCH  ?= torch==2.13.0
# Run the environment's tools as if it were activated (kernels, nbgrader's alembic, ...).
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: book test lint release clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

# Pages draw their figures with Jupyter's inline backend; a global MPLBACKEND (say Agg)
# would silently drop every figure from the book.
book: export MPLBACKEND = module://matplotlib_inline.backend_inline
book: $(VENV)/.installed
	$(BIN)/jupyter-book build . -W --keep-going

test: $(VENV)/.installed
	$(BIN)/python -m pytest -n 2

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

release: $(VENV)/.installed
	$(BIN)/scalinglab release --all

clean:
	$(BIN)/jupyter-book clean --all . || true
