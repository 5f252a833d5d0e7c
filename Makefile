# Two commands for a fresh machine: `make demo` and `make test` (README). Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
# CPU machines and CI: constraints pin torch==2.13.0 (CPU build) and the Prefect pins.
CONSTRAINTS ?= constraints.txt
OUT    ?= outputs/demo
# Optional: an index to take the CPU build of torch from (e.g. https://download.pytorch.org/whl/cpu), installed
# before the project so the constraints' torch version is already satisfied by a CPU build.
TORCH_INDEX ?=
TORCH_PIN := $(shell grep '^torch==' $(CONSTRAINTS))

.PHONY: demo test lint bench bench-seg bench-gpu clean

$(VENV)/.core: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(if $(TORCH_INDEX),$(PIP) install -q '$(TORCH_PIN)' --index-url $(TORCH_INDEX))
	$(PIP) install -q -c $(CONSTRAINTS) -e .
	touch $@

$(VENV)/.dev: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(if $(TORCH_INDEX),$(PIP) install -q '$(TORCH_PIN)' --index-url $(TORCH_INDEX))
	$(PIP) install -q -c $(CONSTRAINTS) -e '.[dev]'
	touch $@ $(VENV)/.core

# The run-index browser test drives Debian's Chromium (Playwright downloads no browser here).
CHROMIUM ?= /usr/bin/chromium
$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "Install Chromium at $(CHROMIUM) for the browser test."; exit 1; }
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

## demo: set up and run the offline demo catalogue through the real flow (draft renderer, no GPU, no weights)
demo: $(VENV)/.core
	$(VENV)/bin/onmodel demo --out $(OUT)

## test: set up and run the whole test suite (what CI runs)
test: $(VENV)/.dev $(CHROMIUM)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -n 2 -q

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

## bench: the 200-product catalogue benchmark (draft renderer)
bench: $(VENV)/.dev
	$(PY) bench/catalog_flow.py --products 200

bench-seg: $(VENV)/.dev
	$(PY) bench/segmentation.py --n 300

bench-gpu: $(VENV)/.dev
	$(PY) bench/gpu_render.py

clean:
	rm -rf outputs/demo outputs/bench .pytest_cache .ruff_cache
