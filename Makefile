# facesearch: the two commands a new user runs are `make demo` and `make test`; each sets itself up.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
SHARED ?= $(abspath ../shared)
STAMP := $(VENV)/.installed

# Models and data from ../shared are used when present (read-only, never copied); dlib's pack always works.
ifneq ($(wildcard $(SHARED)/models),)
export FACESEARCH_MODEL_DIRS := $(SHARED)/models
endif
export FACESEARCH_SHARED := $(SHARED)

.PHONY: setup demo demo-serve test lint bench clean screenshots

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

# The demo, then the workbench on http://127.0.0.1:8000/ with a login per role (printed), until Ctrl-C.
demo-serve: $(STAMP)
	$(PY) scripts/demo.py --serve

# The workbench's browser tests drive Debian's Chromium (Playwright cannot download browsers here).
CHROMIUM ?= /usr/bin/chromium

# A real Milvus standalone server for the Milvus backend's tests: PyPI's `milvus` package ships its binary and
# wants an older setuptools than the project's, so it has an environment of its own (tests skip without it).
MILVUS_VENV := .venv-milvus
MILVUS_STAMP := $(MILVUS_VENV)/.installed

$(MILVUS_STAMP):
	@test -x $(MILVUS_VENV)/bin/python || $(PYTHON) -m venv $(MILVUS_VENV) || python3 -m venv $(MILVUS_VENV)
	@$(MILVUS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check "milvus==2.3.5" "setuptools==65.5.0" \
		&& touch $(MILVUS_STAMP) \
		|| (rm -rf $(MILVUS_VENV); echo "the Milvus server could not be installed: its tests will be skipped")

test: $(STAMP) $(MILVUS_STAMP)
	@test -x $(CHROMIUM) || (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) || echo "chromium could not be installed: the browser tests will be skipped"
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -n 2 --dist loadfile -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts
	$(VENV)/bin/mypy

# The face_recognition library is the ingest benchmark's reference; --no-deps keeps it on dlib-bin's dlib
# (its own dependency would compile dlib from source).
bench: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps face_recognition==1.3.0
	$(PY) benchmarks/search_latency.py --faces 100000
	$(PY) benchmarks/ingest_throughput.py
	$(PY) benchmarks/accuracy.py
	$(PY) benchmarks/calibration.py --pack yunet-mobilefacenet
	$(PY) benchmarks/load_api.py
	$(PY) benchmarks/auth_flood.py
	$(PY) benchmarks/scale.py --faces 1000000
	$(PY) benchmarks/catalog_scale.py --faces 1000000 --crossmatch 100000
	$(PY) benchmarks/templates.py
	$(PY) benchmarks/score_normalisation.py
	$(PY) benchmarks/fusion.py
	$(PY) benchmarks/cli_startup.py
	$(PY) benchmarks/alignment.py
	$(PY) benchmarks/accuracy.py --pack yunet-mobilefacenet-flip --pack fused

# The workbench's screenshots in docs/ui/ (README, docs/ui.md), from public-domain photos only.
screenshots: $(STAMP)
	$(PY) scripts/screenshots.py

clean:
	rm -rf $(VENV) $(MILVUS_VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info src/*.egg-info
