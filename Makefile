# Quick start:  make book   (build the whole book, executing every chapter)
#               make test   (run all tests; 15-30 min on 2 cores)
# Both create the virtual environment .venv on first use, with the exact versions of
# requirements.lock (the environment the tests last passed in); `make lock` refreshes it.
# Also: make test-fast (the unit tests: under 2 min on 2 shared cores at load 4, 80 s of
# CPU), make pdf (the whole book
# as one PDF, after make book), make lint.

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
# The lock: every package of the tested environment but torch (pinned by TORCH above) and
# the course itself, used as pip constraints: a fresh install gets exactly these versions,
# while pyproject.toml keeps the loose ranges for people who install the package elsewhere.
LOCK   := requirements.lock
# Run the environment's tools as if it were activated (kernels, nbgrader's alembic, ...).
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: book test test-fast lint lock pdf release clean

# The book and the exercises (the package, torch, Jupyter Book, nbgrader, Jupyter).
$(VENV)/.installed: pyproject.toml $(LOCK)
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
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e ".[book,grading]"
	touch $@

# ... and what only the tests and the linter need (pytest, ruff, Playwright).
$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e ".[test]"
	touch $@

# Pages draw their figures with Jupyter's inline backend; a global MPLBACKEND (say Agg)
# would silently drop every figure from the book.
book: export MPLBACKEND = module://matplotlib_inline.backend_inline
book: $(VENV)/.installed
	$(BIN)/jupyter-book build . -W --keep-going

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n 2

# For contributors: everything but the executed pages and notebooks, the browser, the
# sandboxed grading, the cluster and the database tests and the longest unit tests (those are
# marked slow; tests/conftest.py lists the long ones). Measured: 1 min 48 s wall, 80 s of CPU,
# on 2 cores shared with other jobs (load average about 4).
test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n 2 -m "not slow"

# Refresh the lock: install the course into a scratch environment from pyproject.toml's
# ranges alone (newest versions that satisfy them), run nothing, and freeze it. Then run
# `make test` in a fresh clone before committing the new lock.
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip
	.venv-lock/bin/python -m pip install --quiet "$(TORCH)" $(if $(TORCH_INDEX),--extra-index-url "$(TORCH_INDEX)")
	.venv-lock/bin/python -m pip install --quiet -e ".[test,cluster]"
	{ echo "# The tested environment, without torch (Makefile: TORCH) and the course itself."; \
	  echo "# Made by \`make lock\` from pyproject.toml's ranges; pip constraints (-c)."; \
	  .venv-lock/bin/python -m pip freeze --exclude-editable | grep -v -i -E '^(torch|scalinglab)=='; \
	} > $(LOCK)
	rm -rf .venv-lock

# The whole book as one PDF, printed by the system's Chromium from Jupyter Book's
# single-page HTML (MathJax rendered, figures embedded, offline); after `make book`, whose
# executed pages it reuses from the cache.
pdf: export MPLBACKEND = module://matplotlib_inline.backend_inline
pdf: $(VENV)/.installed-test
	$(BIN)/jupyter-book build . --builder singlehtml -W --keep-going
	$(BIN)/python _ext/print_pdf.py _build/singlehtml _build/pdf/why-deep-learning-scales.pdf

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks _ext
	$(BIN)/ruff format --check src tests benchmarks _ext

release: $(VENV)/.installed
	$(BIN)/scalinglab release --all

clean:
	$(BIN)/jupyter-book clean --all . || true
