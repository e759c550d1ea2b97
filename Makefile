# `make demo` and `make test` do all set-up on a fresh machine: .venv, Python packages,
# a Jupyter kernel inside .venv, and (for the tests) PostgreSQL from Debian's packages.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.mlnb-installed
# Kernels come from .venv, whatever else is installed on the machine.
export JUPYTER_PATH := $(abspath $(VENV))/share/jupyter
export PYDEVD_DISABLE_FILE_VALIDATION := 1
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install demo test bench lint typecheck system-deps clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade uv
	$(VENV)/bin/uv pip install --python $(PY) -q --compile-bytecode -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (mlnb .venv)" >/dev/null
	@touch $(STAMP)

install: $(STAMP)

# PostgreSQL backs the MLflow server of the scale-up tests; the tests start their own
# cluster on 127.0.0.1 and stop it.
system-deps:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "installing PostgreSQL (Debian package) for the tracking-server tests"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql >/dev/null; }

demo: install
	$(PY) -m mlnb init
	@mkdir -p .mlnb/demo
	$(VENV)/bin/papermill notebooks/train.ipynb .mlnb/demo/train-output.ipynb -p C 0.5 --log-level WARNING
	$(PY) -m mlnb show --experiment train
	@echo; echo "== versions and lineage of the training data"
	$(PY) -m mlnb versions breast-cancer
	$(PY) -m mlnb lineage breast-cancer
	@echo; echo "== a pipeline of notebooks: prepare -> train -> evaluate, then again (all cached)"
	$(VENV)/bin/mlnb pipeline run notebooks/pipeline.yaml --workers 2
	$(VENV)/bin/mlnb pipeline run notebooks/pipeline.yaml
	@echo; echo "== the model as a service: export notebooks/serve.ipynb, serve it, call it"
	@MLNB=$(VENV)/bin/mlnb bash notebooks/demo-serve.sh

test: install system-deps lint typecheck
	$(PY) -m pytest

bench: install
	$(PY) -m benchmarks

lint: install
	$(VENV)/bin/ruff check mlnb tests benchmarks
	$(VENV)/bin/ruff format --check mlnb tests benchmarks

typecheck: install
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .mlnb .pytest_cache
