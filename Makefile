# The two commands: `make run` (set up + run the whole pipeline) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export DATA_DIR ?= $(CURDIR)/data
export DAGSTER_HOME ?= $(DATA_DIR)/dagster_home
export GX_ANALYTICS_ENABLED ?= false
export TF_CPP_MIN_LOG_LEVEL ?= 2
# INFO: a progress line per step; DEBUG: also Dagster's own events
export LOG_LEVEL ?= INFO

.PHONY: install run dev test clean serve api-key dashboard publish bench bi bi-install pin unpin champion image base-image compose-up compose-down

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The Dagster instance of `make run` and `make dev` (runs of one show in the other), without usage telemetry.
$(DAGSTER_HOME)/dagster.yaml:
	mkdir -p $(DAGSTER_HOME)
	printf 'telemetry:\n  enabled: false\n' > $@

run: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m orchestration.run

dev: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -m orchestration.definitions

# HOST/PORT, API_KEYS_FILE, API_TLS_CERTFILE/API_TLS_KEYFILE: see README (refuses a non-loopback HOST without keys)
# The served champion: `make pin MODEL=lstm VERSION=<model_version> REASON=...`, `make unpin REASON=...`,
# `make champion` shows it (all through orchestration/champion.py: the set_champion job, then publish).
pin: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m orchestration.champion pin "$(MODEL)" "$(VERSION)" --reason "$(REASON)"

unpin: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m orchestration.champion unpin --reason "$(REASON)"

champion: install
	$(BIN)/python -m orchestration.champion show

serve: install
	$(BIN)/python -m serving.api.serve

# make api-key SCOPE=read[,predict,admin] NAME=who: adds a key to $$API_KEYS_FILE and prints it once (last line)
api-key: install
	$(BIN)/python -m serving.api.keys add --scope "$(SCOPE)" --name "$(NAME)"

dashboard: install
	$(BIN)/streamlit run serving/dashboard/app.py --server.port $${DASHBOARD_PORT:-8501}  # more settings: .streamlit/config.toml

publish: install
	$(BIN)/python -m warehouse.publish

# Apache Superset on the published copy, in its own virtualenv (its pins never touch the platform's) (README: Superset)
BI_VENV := .venv-bi
$(BI_VENV)/.installed: bi/requirements.txt bi/constraints.txt
	test -x $(BI_VENV)/bin/python || $(PYTHON) -m venv $(BI_VENV)
	$(BI_VENV)/bin/python -m pip install --quiet -r bi/requirements.txt -c bi/constraints.txt
	touch $@

bi-install: $(BI_VENV)/.installed

# Runs the pipeline first when there is no published copy yet; Superset on $$BI_PORT (default 8088).
bi: bi-install
	test -f "$${PUBLISHED_WAREHOUSE:-$(DATA_DIR)/published/warehouse.duckdb}" || $(MAKE) run
	$(BI_VENV)/bin/python bi/start.py

bench: install
	$(BIN)/python bench/load_api.py

test: install
	$(BIN)/python -m pytest

# Containers (deploy/): podman if installed, else docker. CA_BUNDLE: a TLS-intercepting proxy's CA bundle for pip;
# BUILD_FLAGS: e.g. --network host where the engine's bridge network does not work.
ENGINE ?= $(if $(shell command -v podman),podman,docker)
COMPOSE ?= $(if $(filter podman,$(ENGINE)),podman-compose,docker compose)
IMAGE ?= localhost/rossmann-platform:latest
BASE_IMAGE ?= docker.io/library/python:3.11-slim
CA_SECRET = --secret id=ca_bundle,src=$(CA_BUNDLE)

image:
	$(ENGINE) build $(if $(filter podman,$(ENGINE)),--format docker) $(if $(CA_BUNDLE),$(CA_SECRET)) $(BUILD_FLAGS) \
	  --build-arg BASE=$(BASE_IMAGE) -t $(IMAGE) -f deploy/Containerfile .

# Debian 12 + Python 3.11 by debootstrap where no registry is reachable; then
# make image BASE_IMAGE=localhost/debian-python311:bookworm
base-image:
	deploy/base-image.sh localhost/debian-python311:bookworm

compose-up:
	PLATFORM_IMAGE=$(IMAGE) BASE_IMAGE=$(BASE_IMAGE) $(COMPOSE) -f deploy/compose.yaml up -d

compose-down:
	$(COMPOSE) -f deploy/compose.yaml down

clean:
	rm -rf $(DATA_DIR) dbt_project/target
