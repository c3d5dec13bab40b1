"""The platform's settings: every environment variable it reads is read here, once.

Library code never reads or writes the environment: it takes paths and connections as arguments. Entry points
(the Dagster definitions, ``python -m`` tools, the API and the dashboard) build a :class:`Settings` with
:meth:`Settings.from_env` and pass what they need down.

| variable | default | meaning |
| --- | --- | --- |
| ``DATA_DIR`` | ``<repo>/data`` | everything the platform writes |
| ``RAW_DATA_DIR`` | unset | input folder; unset = the embedded synthetic default data (``DATA_DIR/default_raw``) |
| ``WAREHOUSE_PATH`` | ``DATA_DIR/warehouse.duckdb`` | the build warehouse |
| ``PUBLISHED_WAREHOUSE`` | ``DATA_DIR/published/warehouse.duckdb`` | the read-only copy readers open |
| ``PUBLISH_STORAGE_VERSION`` | ``v1.0.0`` | DuckDB storage version of the published copy (``v1.0.0``: DuckDB 1.0 and later read it); empty = the writer's own format |
| ``TRAINING_PROFILE`` | ``default`` | ``fast`` trains tiny models (smoke runs) |
| ``KEEP_MODEL_VERSIONS`` | ``3`` | artifact folders kept per model |
| ``RUN_LOCK_TIMEOUT_S`` | ``0`` | seconds a run waits for another run on the same ``DATA_DIR`` to finish; 0 = fail at once |
| ``GUARD_STORE_MAX_MULTIPLE`` | ``10`` | a daily Sales / Customers value above this multiple of its store's 90th percentile of open days (all sales files merged) fails the raw check |
| ``GUARD_SALES_PER_CUSTOMER_MIN`` / ``_MAX`` | ``1`` / ``200`` | plausible Sales per customer on open days with sales and customers |
| ``GUARD_MAX_COMPETITION_DISTANCE_M`` | ``100000`` | largest plausible ``CompetitionDistance`` (metres) |
| ``GUARD_FORECAST_MAX_MULTIPLE`` | ``3`` | a store's forecast above this multiple of its 95th percentile of open-day sales is not published |
| ``RETRAIN_MAX_AGE_DAYS`` | ``7`` | refit a model whose latest version was trained longer ago than this |
| ``FORCE_REFIT`` | ``0`` | ``1``: every model refits on this run whatever the policy says |
| ``LOG_LEVEL`` | ``INFO`` | the platform's log level; ``DEBUG`` also shows Dagster's DEBUG events |
| ``SERVING_CONNECTION_MODE`` | ``cached`` | the API's reader: ``cached`` (one attached instance per published version) or ``per_request`` |
| ``SERVING_DUCKDB_THREADS`` | ``1`` | DuckDB threads of each serving reader instance |
| ``SERVING_DUCKDB_MEMORY_LIMIT`` | ``1GB`` | DuckDB memory limit of each serving reader instance |
| ``API_MAX_BODY_BYTES`` | ``1048576`` | the API answers 413 to a request body larger than this (1 MiB) |
| ``RAW_SENSOR_INTERVAL_S`` | ``60`` | seconds between two looks of the input-folder sensor (under ``make dev``) |
| ``FORECAST_SCHEDULE_CRON`` | ``0 6 * * *`` | the daily fallback run of ``forecast_pipeline`` (cron) |
| ``FORECAST_SCHEDULE_TIMEZONE`` | ``UTC`` | the schedule's time zone (IANA name) |
| ``ALERT_WEBHOOK_URLS`` | empty | comma-separated webhook URLs every alert is POSTed to (Slack / Teams ``{"text": ...}``) |
| ``ALERT_TIMEOUT_S`` / ``ALERT_RETRIES`` | ``5`` / ``2`` | per-request timeout and retries of a webhook POST |
| ``MONITOR_<THRESHOLD>`` | see ``monitoring/checks.py`` | the drift and degradation checks' thresholds and severities, e.g. ``MONITOR_PSI_WARN=0.25``, ``MONITOR_COVERAGE_SEVERITY=ERROR`` |
| ``API_KEYS_FILE`` | unset | the API's keys (hashed, with scopes; ``python -m serving.api.keys``); unset = no authentication, loopback only |
| ``HOST`` / ``PORT`` | ``127.0.0.1`` / ``8000`` | where ``python -m serving.api.serve`` (``make serve``) listens |
| ``API_TLS_CERTFILE`` / ``API_TLS_KEYFILE`` | unset | PEM certificate and key: the API serves HTTPS (both or neither) |
| ``API_CORS_ORIGINS`` | empty | comma-separated origins browsers may call the API from (none by default) |
| ``API_PREDICT_MAX_ROWS`` | ``5000`` | store-days one ``POST /predict`` may ask for (more: 413) |
| ``API_RATE_LIMIT_PER_MIN`` | ``600`` | requests per minute per key (per client address without keys); more: 429; ``0`` = no limit |
| ``SERVING_QUERY_TIMEOUT_S`` | ``10`` | a request's warehouse queries are interrupted after this many seconds (504) |
| ``PLATFORM_READER_GROUP`` | unset | group that may read the published copy, model artifacts and alert logs (files 0640, folders 0750); unset: the owner only |
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
PUBLISHED_FILE = "warehouse.duckdb"
# The published copy's DuckDB storage format: what DuckDB 1.x clients (BI drivers, DBeaver, duckdb-engine) read;
# files in the writer's own 2.x format are refused by every 1.x client.
PUBLISH_STORAGE_VERSION = "v1.0.0"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    raw_data_dir: Path | None = None
    warehouse_path: Path | None = None
    published_warehouse: Path | None = None
    publish_storage_version: str = PUBLISH_STORAGE_VERSION
    training_profile: str = "default"
    keep_model_versions: int = 3
    run_lock_timeout_s: float = 0.0
    log_level: str = "INFO"
    guard_store_max_multiple: float = 10.0
    guard_sales_per_customer_min: float = 1.0
    guard_sales_per_customer_max: float = 200.0
    guard_max_competition_distance_m: float = 100_000.0
    guard_forecast_max_multiple: float = 3.0
    serving_connection_mode: str = "cached"
    serving_duckdb_threads: int = 1
    serving_duckdb_memory_limit: str = "1GB"
    api_max_body_bytes: int = 1_048_576
    raw_sensor_interval_s: int = 60
    forecast_schedule_cron: str = "0 6 * * *"
    forecast_schedule_timezone: str = "UTC"
    alert_webhook_urls: tuple[str, ...] = ()
    alert_timeout_s: float = 5.0
    alert_retries: int = 2
    # (name, value) of the MONITOR_* variables, lower-case without the prefix; monitoring.checks parses them
    monitor_overrides: tuple[tuple[str, str], ...] = ()
    retrain_max_age_days: float = 7.0
    force_refit: bool = False
    api_keys_file: Path | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_tls_certfile: Path | None = None
    api_tls_keyfile: Path | None = None
    api_cors_origins: tuple[str, ...] = ()
    api_predict_max_rows: int = 5000
    api_rate_limit_per_min: int = 600
    serving_query_timeout_s: float = 10.0
    platform_reader_group: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data_dir = Path(env.get("DATA_DIR") or REPO_ROOT / "data")
        return cls(
            data_dir=data_dir,
            raw_data_dir=Path(env["RAW_DATA_DIR"]) if env.get("RAW_DATA_DIR") else None,
            warehouse_path=Path(env["WAREHOUSE_PATH"]) if env.get("WAREHOUSE_PATH") else None,
            published_warehouse=Path(env["PUBLISHED_WAREHOUSE"]) if env.get("PUBLISHED_WAREHOUSE") else None,
            publish_storage_version=env.get("PUBLISH_STORAGE_VERSION", PUBLISH_STORAGE_VERSION).strip(),
            training_profile=env.get("TRAINING_PROFILE", "default"),
            keep_model_versions=int(env.get("KEEP_MODEL_VERSIONS", "3")),
            run_lock_timeout_s=float(env.get("RUN_LOCK_TIMEOUT_S") or 0),
            log_level=env.get("LOG_LEVEL", "INFO").upper(),
            guard_store_max_multiple=float(env.get("GUARD_STORE_MAX_MULTIPLE") or 10),
            guard_sales_per_customer_min=float(env.get("GUARD_SALES_PER_CUSTOMER_MIN") or 1),
            guard_sales_per_customer_max=float(env.get("GUARD_SALES_PER_CUSTOMER_MAX") or 200),
            guard_max_competition_distance_m=float(env.get("GUARD_MAX_COMPETITION_DISTANCE_M") or 100_000),
            guard_forecast_max_multiple=float(env.get("GUARD_FORECAST_MAX_MULTIPLE") or 3),
            serving_connection_mode=env.get("SERVING_CONNECTION_MODE", "cached"),
            serving_duckdb_threads=int(env.get("SERVING_DUCKDB_THREADS", "1")),
            serving_duckdb_memory_limit=env.get("SERVING_DUCKDB_MEMORY_LIMIT", "1GB"),
            api_max_body_bytes=int(env.get("API_MAX_BODY_BYTES") or 1_048_576),
            raw_sensor_interval_s=int(env.get("RAW_SENSOR_INTERVAL_S") or 60),
            forecast_schedule_cron=env.get("FORECAST_SCHEDULE_CRON") or "0 6 * * *",
            forecast_schedule_timezone=env.get("FORECAST_SCHEDULE_TIMEZONE") or "UTC",
            alert_webhook_urls=tuple(u.strip() for u in env.get("ALERT_WEBHOOK_URLS", "").split(",") if u.strip()),
            alert_timeout_s=float(env.get("ALERT_TIMEOUT_S") or 5),
            alert_retries=int(env.get("ALERT_RETRIES") or 2),
            monitor_overrides=tuple(sorted((k[len("MONITOR_"):].lower(), v.strip()) for k, v in env.items()
                                           if k.startswith("MONITOR_") and v.strip())),
            retrain_max_age_days=float(env.get("RETRAIN_MAX_AGE_DAYS") or 7),
            force_refit=env.get("FORCE_REFIT", "").strip().lower() in ("1", "true", "yes"),
            api_keys_file=_optional_path(env, "API_KEYS_FILE"),
            api_host=env.get("HOST") or "127.0.0.1",
            api_port=int(env.get("PORT") or 8000),
            api_tls_certfile=_optional_path(env, "API_TLS_CERTFILE"),
            api_tls_keyfile=_optional_path(env, "API_TLS_KEYFILE"),
            api_cors_origins=tuple(o.strip() for o in env.get("API_CORS_ORIGINS", "").split(",") if o.strip()),
            api_predict_max_rows=int(env.get("API_PREDICT_MAX_ROWS") or 5000),
            api_rate_limit_per_min=int(env.get("API_RATE_LIMIT_PER_MIN") or 600),
            serving_query_timeout_s=float(env.get("SERVING_QUERY_TIMEOUT_S") or 10),
            platform_reader_group=env.get("PLATFORM_READER_GROUP") or None,
        )

    @property
    def build_warehouse(self) -> Path:
        return self.warehouse_path or self.data_dir / "warehouse.duckdb"

    @property
    def published_dir(self) -> Path:
        return self.published_path.parent

    @property
    def published_path(self) -> Path:
        return self.published_warehouse or self.data_dir / "published" / PUBLISHED_FILE

    @property
    def uses_default_data(self) -> bool:
        return self.raw_data_dir is None

    @property
    def input_dir(self) -> Path:
        return self.raw_data_dir or self.data_dir / "default_raw"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @property
    def run_lock_path(self) -> Path:
        return self.data_dir / ".run.lock"

    @property
    def alerts_path(self) -> Path:
        return self.data_dir / "alerts.jsonl"

def restrict_permissions(path: str | os.PathLike, group: str | None = None) -> None:
    """What the platform writes for readers (the published copy, model artifacts, alert logs): folders 0750, files
    0640 -- the owner writes, ``group`` (``PLATFORM_READER_GROUP``; None: the owner's group) reads, others nothing.
    ``path`` may be a file or a folder (then everything under it)."""
    import shutil

    path = Path(path)
    for item in [path, *(path.rglob("*") if path.is_dir() else ())]:
        if item.is_symlink():
            continue
        if group is not None:
            shutil.chown(item, group=group)
        item.chmod(0o750 if item.is_dir() else 0o640)


def _optional_path(env: Mapping[str, str], name: str) -> Path | None:
    return Path(env[name]) if env.get(name) else None


PLATFORM_LOGGERS = ("ingestion", "warehouse", "forecasting", "analytics", "orchestration", "serving", "expectations",
                    "monitoring")


def configure_logging(level: str | None = None) -> None:
    """Entry points call this: the platform's loggers at ``level`` (default ``$LOG_LEVEL``), one line per record on
    stderr.  Only the platform's own loggers get the handler (not the root), so Dagster's and other libraries'
    records are not printed twice; records still propagate (pytest's caplog, Dagster's log capture)."""
    level = (level or Settings.from_env().log_level).upper()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO lines, read when it is imported
    for name in PLATFORM_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not any(getattr(h, "_platform", False) for h in logger.handlers):
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
            handler._platform = True
            logger.addHandler(handler)
