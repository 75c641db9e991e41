# Two commands do everything on a fresh machine:
#   make app    set up, then start the Gradio app (training a small default model first
#               only if the MLflow store has no runs)
#   make test   set up (Python packages and Debian's Chromium for the browser test), then run
#               ruff and the whole test suite
# Also: make ui (MLflow UI on the project store), make bench (the benchmark tables),
#   make space (a ready Hugging Face Space in build/space/), make space-push REPO=owner/name.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MLFLOW_PORT ?= 5000

.PHONY: app test ui bench chromium space space-push

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

app: $(STAMP)
	$(PY) app.py

# The browser test drives Debian's Chromium; Playwright never downloads a browser of its own.
chromium:
	@test -x /usr/bin/chromium || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

test: $(STAMP) chromium
	$(PY) -m ruff check .
	$(PY) -m pytest

# The UI reads the git-ignored working copy of the committed store (made on first use), so
# browsing never changes a tracked file.
ui: $(STAMP)
	$(PY) -c "from training.store import open_store; open_store()"
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow ui \
	  --backend-store-uri sqlite:///.mlruns-local/mlflow.db --host 127.0.0.1 --port $(MLFLOW_PORT) --workers 1

# Every benchmark table of docs/benchmarks.md, one after the other (an hour or more on 2 CPUs).
bench: export OMP_WAIT_POLICY = PASSIVE
bench: $(STAMP)
	$(PY) -m bench.core --markdown
	$(PY) -m bench.memorize --markdown
	$(PY) -m bench.heldout --markdown
	$(PY) -m bench.latency --markdown
	$(PY) -m bench.load --markdown
	$(PY) -m bench.scale --markdown --steps 20
	$(PY) -m bench.cells --markdown
	$(PY) -m bench.longrange --markdown
	$(PY) -m bench.canary --markdown
	$(PY) -m bench.memory --new-sessions --markdown

# A ready Hugging Face Space in build/space/ (README front matter, app, packages, demo store,
# CPU requirements, LFS rules for every binary file).
space: $(STAMP)
	$(PY) -m deploy.space

# Build, then upload with huggingface_hub; needs HF_TOKEN and the network.
space-push:
	@test -n "$(REPO)" || { echo "usage: make space-push REPO=owner/name (with HF_TOKEN set)"; exit 2; }
	$(MAKE) $(STAMP)
	$(PY) -m deploy.space --push "$(REPO)"
