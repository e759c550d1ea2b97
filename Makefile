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

.PHONY: install demo test test-fast check bench lint typecheck system-deps clean
.PHONY: labextension labextension-develop labextension-test

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade uv
	$(VENV)/bin/uv pip install --python $(PY) -q --compile-bytecode -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (mlnb .venv)" >/dev/null
	@touch $(STAMP)

install: $(STAMP) labextension-develop

# The JupyterLab extension: TypeScript in labextension/, built by @jupyter/builder into
# mlnb/labextension/, which is committed (so installs and wheel builds need no Node.js).
# It is rebuilt only when its sources changed (their hash differs from .built-from).
LABEXT_SOURCES = labextension/package.json labextension/package-lock.json \
  labextension/tsconfig.json $(sort $(wildcard labextension/src/*.ts labextension/style/* \
  labextension/schema/*.json))
LABEXT_HASH = $(shell cat $(LABEXT_SOURCES) | sha256sum | cut -c1-16)
NPM_CI = cd labextension && { [ node_modules/.package-lock.json -nt package-lock.json ] || \
  npm ci --no-audit --no-fund --loglevel=error; }

labextension:
	@if [ "$$(cat labextension/.built-from 2>/dev/null)" != "$(LABEXT_HASH)" ] || \
	    [ ! -f mlnb/labextension/package.json ]; then \
	  echo "building the JupyterLab extension (labextension/ -> mlnb/labextension/)"; \
	  command -v npm >/dev/null || { echo "npm not found: install Node.js 20 to rebuild"; exit 1; }; \
	  ($(NPM_CI)) && rm -rf mlnb/labextension labextension/lib labextension/tsconfig.tsbuildinfo && \
	  (cd labextension && npm run --silent build >/dev/null) && \
	  echo "$(LABEXT_HASH)" > labextension/.built-from; \
	fi

# JupyterLab in .venv sees this checkout's extension and server extension (the wheel installs
# both as data files; an editable install links them instead).
labextension-develop: $(STAMP) labextension
	@rm -rf $(VENV)/share/jupyter/labextensions/mlnb
	@mkdir -p $(VENV)/share/jupyter/labextensions $(VENV)/etc/jupyter/jupyter_server_config.d
	@ln -s $(abspath mlnb/labextension) $(VENV)/share/jupyter/labextensions/mlnb
	@ln -sf $(abspath jupyter-config/jupyter_server_config.d/mlnb.json) \
	  $(VENV)/etc/jupyter/jupyter_server_config.d/mlnb.json

# Jest tests of the extension's TypeScript logic.
labextension-test:
	@command -v npm >/dev/null || { echo "npm not found: install Node.js 20 for the Jest tests"; exit 1; }
	@$(NPM_CI)
	cd labextension && npx --no-install jest --silent

# PostgreSQL backs the MLflow server of the scale-up tests; the tests start their own
# cluster on 127.0.0.1 and stop it.
system-deps:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "installing PostgreSQL (Debian package) for the tracking-server tests"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql >/dev/null; }
	@command -v npm >/dev/null || { \
	  echo "installing Node.js and npm (Debian packages) for the extension's Jest tests"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nodejs npm >/dev/null; }
	@test -x /usr/bin/chromium || { \
	  echo "installing Chromium (Debian package) for the JupyterLab browser tests"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

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

# pytest runs on TEST_WORKERS processes (pytest-xdist), a test file on one worker
# (--dist loadfile) so that a file's module and session fixtures (the corpus run of
# tests/corpus, one JupyterLab per worker at most) are set up once. Not --dist loadgroup:
# with pytest 9, pytest-xdist 3.8 cannot rename a test to its group, and every worker
# would run the whole corpus. TEST_WORKERS=0 runs in this process.
TEST_WORKERS ?= auto
PYTEST_XDIST = -n $(TEST_WORKERS) --dist loadfile

test: install system-deps lint typecheck labextension-test
	$(PY) -m pytest $(PYTEST_XDIST) --durations=40

# The fast lane: no kernels, servers, PostgreSQL or browser (the `slow` mark is set by what a
# test uses, see tests/lanes.py); needs neither Node.js nor the system packages.
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_XDIST)

# Lint and type checks, without Node.js or the system packages.
check: lint typecheck

bench: install system-deps
	@command -v wrk >/dev/null || { \
	  echo "installing wrk (Debian package), the load generator of the serving benchmarks"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq wrk >/dev/null; }
	$(PY) -m benchmarks

lint: $(STAMP)
	$(VENV)/bin/ruff check mlnb tests benchmarks
	$(VENV)/bin/ruff format --check mlnb tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .mlnb .pytest_cache
