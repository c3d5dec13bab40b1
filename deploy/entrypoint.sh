#!/usr/bin/env bash
# The image's entrypoint: one subcommand per service of deploy/compose.yaml, plus `healthcheck` (the image's
# HEALTHCHECK, which checks whichever service this container runs). Anything else is executed as given.
set -euo pipefail
cd /app

role_file=/tmp/platform-service  # the service this container runs, for `healthcheck` (a separate process)

prepare() {
  if ! mkdir -p "$DATA_DIR" "$DAGSTER_HOME" 2>/dev/null || [ ! -w "$DATA_DIR" ]; then
    echo "entrypoint: DATA_DIR $DATA_DIR is not writable by uid $(id -u); give the volume to that uid" \
         "(e.g. chown $(id -u) on the host folder) or use a named volume" >&2
    exit 1
  fi
  # Webserver, daemon and pipeline share this Dagster instance; written once, by rename (they may start together).
  if [ ! -f "$DAGSTER_HOME/dagster.yaml" ]; then
    printf 'telemetry:\n  enabled: false\n' > "$DAGSTER_HOME/dagster.yaml.$$"
    mv "$DAGSTER_HOME/dagster.yaml.$$" "$DAGSTER_HOME/dagster.yaml"
  fi
  # Input mounted at /input (with a train.csv) is the data; otherwise the pipeline generates the default data
  # into DATA_DIR/default_raw on its first run (orchestration/assets/raw.py).
  if [ -z "${RAW_DATA_DIR:-}" ] && { [ -f /input/train.csv ] || [ -f /input/train.csv.gz ]; }; then
    export RAW_DATA_DIR=/input
  fi
  echo "$1" > "$role_file"
  echo "entrypoint: $1 on DATA_DIR=$DATA_DIR, input: ${RAW_DATA_DIR:-default data (generated at the first run)}" >&2
}

http_ok() {  # exit 0 when GET $1 answers 200 (python: the image has no curl)
  python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=8)' "$1" >/dev/null
}

command="${1:-api}"
[ $# -gt 0 ] && shift
case "$command" in
  pipeline)
    prepare pipeline
    exec python -m orchestration.run "$@" ;;
  api)
    prepare api
    exec uvicorn serving.api:app --host "${API_HOST:-0.0.0.0}" --port "${PORT:-8000}" "$@" ;;
  dashboard)
    prepare dashboard
    exec streamlit run serving/dashboard/app.py --server.address 0.0.0.0 \
      --server.port "${DASHBOARD_PORT:-8501}" "$@" ;;  # other settings: /app/.streamlit/config.toml
  dagster-webserver)
    prepare dagster-webserver
    exec dagster-webserver -m orchestration.definitions -h 0.0.0.0 -p "${DAGSTER_PORT:-3000}" "$@" ;;
  dagster-daemon)
    prepare dagster-daemon
    exec dagster-daemon run -m orchestration.definitions "$@" ;;
  healthcheck)
    case "$(cat "$role_file" 2>/dev/null || echo none)" in
      api) http_ok "http://127.0.0.1:${PORT:-8000}/health" ;;  # 503 (nothing published yet) is unhealthy
      dashboard) http_ok "http://127.0.0.1:${DASHBOARD_PORT:-8501}/_stcore/health" ;;
      dagster-webserver) http_ok "http://127.0.0.1:${DAGSTER_PORT:-3000}/server_info" ;;
      dagster-daemon) dagster-daemon liveness-check >/dev/null ;;
      *) exit 0 ;;  # the one-shot pipeline, or a command of the user's: nothing to probe
    esac ;;
  *)
    exec "$command" "$@" ;;
esac
