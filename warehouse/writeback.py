"""The write-back contract: forecast, metric and registry tables in schema `ml`.

Users and BI tools read these tables, so their columns are fixed here. A write runs in a single transaction
(a rerun never duplicates rows, a failure leaves the tables as they were) and replaces:

- in ``ml.store_sales_forecast``: the rows of each (model, model_version, origin_date) it carries. Every
  forecast keeps its origin (the first day it covers): a refresh adds a new origin, under the same version when
  the model was not refit, and never overwrites an earlier one, so every past forecast can be scored later.
- in ``ml.model_registry``, ``ml.model_metrics``, ``ml.feature_importance`` and ``ml.backtest_forecast``
  (each version's fold rows with actuals and interval): the rows of the versions in the registry frame.
- ``ml.series_diagnostics`` (one row per store: ADF test and autocorrelations of the current history) as a
  whole, when given.

A forecast-only refresh of a registered version passes just ``forecasts`` (registry and metrics left out).

The champion, each model's latest version and its latest origin are dbt's (``marts.dim_model_versions``, read
by the view ``ml.champion_forecast`` that dbt builds), not the write-back's; ``ml.champion_pins`` (at most one
row: the version pinned as champion) is read there too.
"""

from __future__ import annotations

from datetime import datetime, timezone

import duckdb
import pandas as pd

ML_SCHEMA = "ml"

TABLE_COLUMNS: dict[str, dict[str, str]] = {
    "store_sales_forecast": {
        "store_id": "INTEGER NOT NULL",
        "forecast_date": "DATE NOT NULL",
        "model": "VARCHAR NOT NULL",
        "model_version": "VARCHAR NOT NULL",
        "origin_date": "DATE NOT NULL",  # the first day the forecast covers (the day after its history)
        "sales_pred": "DOUBLE NOT NULL",
        "sales_lower": "DOUBLE NOT NULL",
        "sales_upper": "DOUBLE NOT NULL",
        "customers_pred": "DOUBLE",
        "created_at": "TIMESTAMP NOT NULL",
    },
    "model_metrics": {
        "model": "VARCHAR NOT NULL",
        "model_version": "VARCHAR NOT NULL",
        "split": "VARCHAR NOT NULL",
        "metric": "VARCHAR NOT NULL",
        "value": "DOUBLE",
        "created_at": "TIMESTAMP NOT NULL",
    },
    "model_registry": {
        "model": "VARCHAR NOT NULL",
        "model_version": "VARCHAR NOT NULL",
        "trained_at": "TIMESTAMP NOT NULL",
        "train_start": "DATE NOT NULL",
        "train_end": "DATE NOT NULL",
        "n_train_rows": "BIGINT NOT NULL",
        "params": "JSON",
        "artifact_path": "VARCHAR NOT NULL",
    },
    "feature_importance": {
        "model": "VARCHAR NOT NULL",
        "model_version": "VARCHAR NOT NULL",
        "feature": "VARCHAR NOT NULL",
        "importance": "DOUBLE",
        "method": "VARCHAR NOT NULL",
        "created_at": "TIMESTAMP NOT NULL",
    },
    "series_diagnostics": {
        "store_id": "INTEGER NOT NULL",
        "n_obs": "INTEGER NOT NULL",
        "adf_stat": "DOUBLE",
        "adf_pvalue": "DOUBLE",
        "adf_lags": "INTEGER",
        "is_stationary": "BOOLEAN",
        "acf_lag1": "DOUBLE",
        "acf_lag7": "DOUBLE",
        "acf_lag14": "DOUBLE",
        "history_end": "DATE",
        "created_at": "TIMESTAMP NOT NULL",
    },
    # every version's backtest fold rows: the forecasts it would have made, beside the actuals
    "backtest_forecast": {
        "model": "VARCHAR NOT NULL",
        "model_version": "VARCHAR NOT NULL",
        "split": "VARCHAR NOT NULL",
        "store_id": "INTEGER NOT NULL",
        "forecast_date": "DATE NOT NULL",
        "horizon_day": "INTEGER NOT NULL",  # 1 = the fold's first day
        "sales_pred": "DOUBLE NOT NULL",
        "sales_lower": "DOUBLE NOT NULL",
        "sales_upper": "DOUBLE NOT NULL",
        "actual_sales": "DOUBLE",
        "is_open": "BOOLEAN",
        "customers_pred": "DOUBLE",
        "actual_customers": "DOUBLE",
        "created_at": "TIMESTAMP NOT NULL",
    },
    # the version pinned as champion by hand (warehouse/champion.py): at most one row, empty = no pin
    "champion_pins": {
        "model": "VARCHAR NOT NULL",
        "model_version": "VARCHAR NOT NULL",
        "pinned_at": "TIMESTAMP NOT NULL",
        "pinned_by": "VARCHAR NOT NULL",
        "reason": "VARCHAR",
    },
    # customer-sales segments (analytics.segments), replaced as a whole by each run
    "customer_sales_clusters": {
        "store_id": "INTEGER NOT NULL",
        "month": "DATE NOT NULL",
        "cluster": "INTEGER NOT NULL",
        "customers": "DOUBLE NOT NULL",
        "sales": "DOUBLE NOT NULL",
    },
    "customer_sales_cluster_centers": {
        "cluster": "INTEGER NOT NULL",
        "customers": "DOUBLE NOT NULL",
        "sales": "DOUBLE NOT NULL",
        "n_store_months": "BIGINT NOT NULL",
    },
    # the retraining policy's decision per model and run (forecasting/retraining.py), appended
    "training_decisions": {
        "run_id": "VARCHAR NOT NULL",
        "model": "VARCHAR NOT NULL",
        "model_version": "VARCHAR NOT NULL",
        "decision": "VARCHAR NOT NULL",
        "reason": "VARCHAR NOT NULL",
        "compared": "JSON",
        "created_at": "TIMESTAMP NOT NULL",
    },
    # each drift and degradation check's outcome per run (monitoring/checks.py), appended
    "monitoring_checks": {
        "check_name": "VARCHAR NOT NULL",
        "severity": "VARCHAR NOT NULL",
        "passed": "BOOLEAN NOT NULL",
        "value": "DOUBLE",
        "threshold": "DOUBLE",
        "details": "JSON",
        "checked_at": "TIMESTAMP NOT NULL",
        "run_id": "VARCHAR NOT NULL",
    },
    # every change of the served champion, appended (warehouse/champion.py)
    "champion_history": {
        "changed_at": "TIMESTAMP NOT NULL",
        "event": "VARCHAR NOT NULL",
        "model": "VARCHAR",
        "model_version": "VARCHAR",
        "from_model": "VARCHAR",
        "from_model_version": "VARCHAR",
        "reason": "VARCHAR",
        "changed_by": "VARCHAR NOT NULL",
        "run_id": "VARCHAR",
    },
}
PER_VERSION_TABLES = ("store_sales_forecast", "model_metrics", "feature_importance", "backtest_forecast")

# Each table's key: a write must not carry two rows with the same key.
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "store_sales_forecast": ("model_version", "origin_date", "store_id", "forecast_date"),
    "model_metrics": ("model", "model_version", "split", "metric"),
    "model_registry": ("model", "model_version"),
    "feature_importance": ("model", "model_version", "feature", "method"),
    "backtest_forecast": ("model", "model_version", "split", "store_id", "forecast_date"),
    "series_diagnostics": ("store_id",),
    "customer_sales_clusters": ("store_id", "month"),
    "customer_sales_cluster_centers": ("cluster",),
    "training_decisions": ("run_id", "model", "model_version"),
    "champion_pins": ("model", "model_version"),
    "champion_history": ("changed_at", "event"),
    "monitoring_checks": ("run_id", "check_name", "checked_at"),
}

# The runner's fold rows (forecasting.runner.FOLD_COLUMNS: horizon_day 0-based there, as the interval factors use
# it) -> ml.backtest_forecast's names; the warehouse counts horizon days from 1 = the fold's first day.
FOLD_ROW_NAMES = {"sale_date": "forecast_date", "sales": "actual_sales", "customers": "actual_customers"}


class WriteBackError(ValueError):
    """Model output that does not fit the write-back contract."""


def ensure_ml_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the contract's tables; upgrade those an earlier release created (see :func:`_upgrade_tables`)."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {ML_SCHEMA}")
    _upgrade_tables(con)
    for table, columns in TABLE_COLUMNS.items():
        cols = ", ".join(f"{name} {ddl}" for name, ddl in columns.items())
        con.execute(f"CREATE TABLE IF NOT EXISTS {ML_SCHEMA}.{table} ({cols})")


def _table_columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    return {r[0] for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = ? AND table_name = ?", [ML_SCHEMA, table]).fetchall()}


def _upgrade_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Bring tables written before forecasts kept their origin up to the contract, so an upgraded DATA_DIR keeps
    working: ``store_sales_forecast`` gains ``origin_date`` (each old version forecast once, from its first day),
    ``backtest_forecast`` takes the contract's names and counts horizon days from 1 (it counted from 0)."""
    forecast_columns = _table_columns(con, "store_sales_forecast")
    if forecast_columns and "origin_date" not in forecast_columns:
        con.execute(f"ALTER TABLE {ML_SCHEMA}.store_sales_forecast ADD COLUMN origin_date DATE")
        con.execute(f"""
            UPDATE {ML_SCHEMA}.store_sales_forecast AS t SET origin_date = first.origin_date
            FROM (SELECT model_version, min(forecast_date) AS origin_date
                  FROM {ML_SCHEMA}.store_sales_forecast GROUP BY model_version) AS first
            WHERE t.model_version = first.model_version""")
        con.execute(f"ALTER TABLE {ML_SCHEMA}.store_sales_forecast ALTER COLUMN origin_date SET NOT NULL")
    backtest_columns = _table_columns(con, "backtest_forecast")
    if "sale_date" in backtest_columns:
        for old, new in FOLD_ROW_NAMES.items():
            con.execute(f"ALTER TABLE {ML_SCHEMA}.backtest_forecast RENAME COLUMN {old} TO {new}")
        con.execute(f"UPDATE {ML_SCHEMA}.backtest_forecast SET horizon_day = horizon_day + 1")


def _conform(table: str, frame: pd.DataFrame, created_at: datetime) -> pd.DataFrame:
    """Columns in contract order, created_at filled, keys checked; raise before anything is written."""
    columns = list(TABLE_COLUMNS[table])
    frame = frame.copy()
    if "created_at" in columns:
        frame["created_at"] = pd.Timestamp(created_at).tz_localize(None)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise WriteBackError(f"ml.{table}: output lacks columns {missing} (it has {list(frame.columns)})")
    frame = frame[columns]
    required = [c for c, ddl in TABLE_COLUMNS[table].items() if "NOT NULL" in ddl]
    null_counts = frame[required].isna().sum()
    if null_counts.any():
        raise WriteBackError(f"ml.{table}: NULLs in required columns {null_counts[null_counts > 0].to_dict()}")
    duplicated = frame.duplicated(list(TABLE_KEYS[table]))
    if duplicated.any():
        raise WriteBackError(
            f"ml.{table}: {int(duplicated.sum())} rows repeat the key {TABLE_KEYS[table]}, e.g. "
            f"{frame.loc[duplicated, list(TABLE_KEYS[table])].head(3).to_dict('records')}"
        )
    return frame


def backtest_rows(fold_rows: pd.DataFrame) -> pd.DataFrame:
    """The runner's fold rows (``sale_date``, ``sales``, ``customers``, 0-based ``horizon_day``, plus the interval,
    ``model`` and ``model_version``) in ``ml.backtest_forecast``'s names, horizon days counted from 1."""
    missing = [c for c in [*FOLD_ROW_NAMES, "horizon_day"] if c not in fold_rows.columns]
    if missing:
        raise WriteBackError(f"ml.backtest_forecast: the fold rows lack {missing} "
                             f"(they have {list(fold_rows.columns)})")
    return fold_rows.rename(columns=FOLD_ROW_NAMES).assign(horizon_day=fold_rows["horizon_day"] + 1)


def _check_origins(frame: pd.DataFrame) -> None:
    before = pd.to_datetime(frame["forecast_date"]) < pd.to_datetime(frame["origin_date"])
    if before.any():
        samples = frame.loc[before, ["model_version", "origin_date", "store_id", "forecast_date"]].head(3)
        raise WriteBackError(f"ml.store_sales_forecast: {int(before.sum())} rows forecast a day before their "
                             f"origin_date, e.g. {samples.to_dict('records')}")


def _no_frame(table: str) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in TABLE_COLUMNS[table]})


def write_model_outputs(
    con: duckdb.DuckDBPyConnection,
    *,
    forecasts: pd.DataFrame,
    metrics: pd.DataFrame | None = None,
    registry: pd.DataFrame | None = None,
    feature_importance: pd.DataFrame | None = None,
    backtest: pd.DataFrame | None = None,
    series_diagnostics: pd.DataFrame | None = None,
    decisions: pd.DataFrame | None = None,
    created_at: datetime | None = None,
) -> dict[str, int]:
    """Write model outputs atomically: the forecast rows replace those of the (model, model_version, origin_date)
    they carry, every other per-version table the rows of the versions in ``registry``.

    A training passes everything; a forecast-only refresh of registered versions passes ``forecasts`` alone (their
    versions must be in ``registry`` or already in ``ml.model_registry``). ``backtest``: the runner's fold rows
    (see :func:`backtest_rows`). ``series_diagnostics``, when given, replaces that table's rows. ``decisions`` (the
    retraining policy's) are appended to ``ml.training_decisions``.
    """
    created_at = created_at or datetime.now(timezone.utc)
    frames = {
        "store_sales_forecast": _conform("store_sales_forecast", forecasts, created_at),
        "model_registry": _conform("model_registry", _no_frame("model_registry") if registry is None else registry,
                                   created_at),
    }
    _check_origins(frames["store_sales_forecast"])
    if metrics is not None:
        frames["model_metrics"] = _conform("model_metrics", metrics, created_at)
    if feature_importance is not None:
        frames["feature_importance"] = _conform("feature_importance", feature_importance, created_at)
    if backtest is not None:
        frames["backtest_forecast"] = _conform("backtest_forecast", backtest_rows(backtest), created_at)
    diagnostics = None
    if series_diagnostics is not None:
        diagnostics = _conform("series_diagnostics", series_diagnostics, created_at)
    versions = frames["model_registry"][["model", "model_version"]].astype(str)
    for table in [t for t in PER_VERSION_TABLES if t in frames and t != "store_sales_forecast"]:
        unknown = frames[table].merge(versions, how="left", indicator=True)["_merge"] == "left_only"
        if unknown.any():
            samples = frames[table].loc[unknown, ["model", "model_version"]].drop_duplicates().head(5)
            raise WriteBackError(f"ml.{table}: rows for model versions missing from the registry frame: "
                                 f"{samples.to_dict('records')}")
    origins = frames["store_sales_forecast"][["model", "model_version", "origin_date"]].drop_duplicates()

    ensure_ml_tables(con)
    con.execute("BEGIN TRANSACTION")
    try:
        con.register("written_versions", versions)
        con.register("written_origins", origins)
        # a forecast-only write may name versions registered by an earlier run
        unregistered = con.execute(f"""
            SELECT DISTINCT o.model, o.model_version FROM written_origins AS o
            WHERE NOT EXISTS (SELECT 1 FROM written_versions AS v
                              WHERE v.model = o.model AND v.model_version = o.model_version)
              AND NOT EXISTS (SELECT 1 FROM {ML_SCHEMA}.model_registry AS r
                              WHERE r.model = o.model AND r.model_version = o.model_version)
            ORDER BY ALL LIMIT 5""").fetchall()
        if unregistered:
            raise WriteBackError(f"ml.store_sales_forecast: rows for model versions neither in the registry frame "
                                 f"nor in ml.model_registry: {unregistered}")
        for table, frame in frames.items():
            if table == "store_sales_forecast":
                con.execute(
                    f"DELETE FROM {ML_SCHEMA}.{table} AS t USING written_origins AS o WHERE t.model = o.model "
                    "AND t.model_version = o.model_version AND t.origin_date = o.origin_date")
            else:
                con.execute(
                    f"DELETE FROM {ML_SCHEMA}.{table} AS t USING written_versions AS v "
                    "WHERE t.model = v.model AND t.model_version = v.model_version")
            con.register("incoming_rows", frame)
            con.execute(f"INSERT INTO {ML_SCHEMA}.{table} BY NAME SELECT * FROM incoming_rows")
            con.unregister("incoming_rows")
        con.unregister("written_versions")
        con.unregister("written_origins")
        if diagnostics is not None:
            _replace(con, "series_diagnostics", diagnostics)
            frames["series_diagnostics"] = diagnostics
        if decisions is not None:
            frames["training_decisions"] = append_rows(con, "training_decisions", decisions, created_at)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return {table: len(frame) for table, frame in frames.items()}


def _replace(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    con.execute(f"DELETE FROM {ML_SCHEMA}.{table}")
    con.register("incoming_rows", frame)
    con.execute(f"INSERT INTO {ML_SCHEMA}.{table} BY NAME SELECT * FROM incoming_rows")
    con.unregister("incoming_rows")


def append_rows(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame,
                created_at: datetime | None = None) -> pd.DataFrame:
    """Append rows to an ``ml`` table after the contract's checks, inside the caller's transaction (a row with a key
    already present replaces it, so a retried write does not duplicate).  Returns the rows written."""
    conformed = _conform(table, frame, created_at or datetime.now(timezone.utc))
    ensure_ml_tables(con)
    con.register("incoming_rows", conformed)
    keys = " AND ".join(f"t.{k} IS NOT DISTINCT FROM i.{k}" for k in TABLE_KEYS[table])
    con.execute(f"DELETE FROM {ML_SCHEMA}.{table} AS t USING incoming_rows AS i WHERE {keys}")
    con.execute(f"INSERT INTO {ML_SCHEMA}.{table} BY NAME SELECT * FROM incoming_rows")
    con.unregister("incoming_rows")
    return conformed


def replace_tables(con: duckdb.DuckDBPyConnection, frames: dict[str, pd.DataFrame],
                   created_at: datetime | None = None) -> dict[str, int]:
    """Replace whole ``ml`` tables (e.g. the segments) in one transaction, after the contract's checks (columns,
    required values, keys): a failed check or write leaves every table as it was.  Returns the rows written."""
    created_at = created_at or datetime.now(timezone.utc)
    conformed = {table: _conform(table, frame, created_at) for table, frame in frames.items()}
    ensure_ml_tables(con)
    con.execute("BEGIN TRANSACTION")
    try:
        for table, frame in conformed.items():
            _replace(con, table, frame)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return {table: len(frame) for table, frame in conformed.items()}
