# Quick start:  make book   (build the whole book, executing every chapter)
#               make test   (run all tests)
# Both create the virtual environment .venv on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch: any torch >= 2.2 works with the package; the pin makes installs reproducible.
# Override with e.g. `make book TORCH=torch` (newest) or `make book TORCH="torch==2.5.1"`.
TORCH  ?= torch==2.13.0
# Where torch comes from. On Linux without an NVIDIA GPU (no nvidia-smi): PyTorch's CPU-only
# wheel index, because the default index's Linux wheel pulls several GB of CUDA libraries.
# If that index cannot be reached, the default index is used instead. `make book
# TORCH_INDEX=` (empty) always uses the default index (say, for the CUDA build).
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
TORCH_INDEX ?= $(shell if [ "$$(uname -s)" = Linux ] && ! command -v nvidia-smi >/dev/null 2>&1; \
                      then echo $(TORCH_CPU_INDEX); fi)
# Run the environment's tools as if it were activated (kernels, nbgrader's alembic, ...).
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: book test lint release clean

# The book and the exercises (the package, torch, Jupyter Book, nbgrader, Jupyter).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@if [ -n "$(TORCH_INDEX)" ] && $(BIN)/python -c 'import sys, urllib.request; \
	        urllib.request.urlopen(sys.argv[1], timeout=20)' "$(TORCH_INDEX)/torch/" 2>/dev/null; then \
	    echo "installing $(TORCH) from $(TORCH_INDEX)"; \
	    $(BIN)/python -m pip install --quiet "$(TORCH)" --index-url "$(TORCH_INDEX)"; \
	else \
	    if [ -n "$(TORCH_INDEX)" ]; then echo "$(TORCH_INDEX) unreachable: using the default index"; fi; \
	    echo "installing $(TORCH)"; \
	    $(BIN)/python -m pip install --quiet "$(TORCH)"; \
	fi
	$(BIN)/python -m pip install --quiet -e ".[book,grading]"
	touch $@

# ... and what only the tests and the linter need (pytest, ruff, Playwright).
$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

# Pages draw their figures with Jupyter's inline backend; a global MPLBACKEND (say Agg)
# would silently drop every figure from the book.
book: export MPLBACKEND = module://matplotlib_inline.backend_inline
book: $(VENV)/.installed
	$(BIN)/jupyter-book build . -W --keep-going

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n 2

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks _ext
	$(BIN)/ruff format --check src tests benchmarks _ext

release: $(VENV)/.installed
	$(BIN)/scalinglab release --all

clean:
	$(BIN)/jupyter-book clean --all . || true
