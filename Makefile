# Two commands: `make demo` (set up, then the main job on the bundled samples) and `make test`
# (set up, then the whole test suite). Set-up is incremental: a second run reuses .venv.
PYTHON ?= python3
VENV ?= .venv
# A GPU user picks a CUDA build here, e.g. TORCH_SPEC="torch==2.13.0 --index-url <CUDA wheel index>".
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
OPS_SOURCES := $(shell find lib/posekit/ops/csrc -type f 2>/dev/null) setup.py

.PHONY: setup demo test clean-build

setup: $(VENV)/.posekit-built

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel

$(VENV)/.torch: | $(PY)
	$(PIP) install $(TORCH_SPEC)
	touch $@

# numpy and cython first: xtcocotools is built from source against the installed NumPy.
$(VENV)/.deps: requirements.txt requirements-dev.txt $(VENV)/.torch
	$(PIP) install "numpy>=1.24" "cython>=3.0" ninja
	$(PIP) install --no-build-isolation -r requirements.txt -r requirements-dev.txt
	touch $@

$(VENV)/.posekit-built: $(VENV)/.deps $(OPS_SOURCES)
	MAX_JOBS=$${MAX_JOBS:-2} $(PIP) install --no-build-isolation --no-deps -e .
	touch $@

demo: setup
	$(PY) tools/demo.py

test: setup
	$(PY) -m pytest -q tests

clean-build:
	rm -rf build lib/posekit/*.so $(VENV)/.posekit-built
