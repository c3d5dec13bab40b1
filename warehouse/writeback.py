"""The write-back contract: forecast, metric and registry tables in schema `ml`.

Users and BI tools read these tables, so their columns are fixed here. A write replaces the rows of
the model versions it carries in a single transaction: a rerun never duplicates rows, and a failure
leaves the tables as they were.

Also written in the same transaction:
- ``ml.feature_importance`` and ``ml.backtest_forecast`` (each version's fold rows with actuals and interval;
  per model version, replaced like the other per-version tables),
- ``ml.series_diagnostics`` (one row per store: ADF test and autocorrelations of the current history;
  replaced as a whole when given).

The champion and each model's latest version are dbt's (``marts.dim_model_versions``, read by the view
``ml.champion_forecast`` that dbt builds), not the write-back's.
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
        "sale_date": "DATE NOT NULL",
        "horizon_day": "INTEGER NOT NULL",
        "is_open": "BOOLEAN",
        "sales": "DOUBLE",
        "customers": "DOUBLE",
        "sales_pred": "DOUBLE NOT NULL",
        "sales_lower": "DOUBLE NOT NULL",
        "sales_upper": "DOUBLE NOT NULL",
        "customers_pred": "DOUBLE",
        "created_at": "TIMESTAMP NOT NULL",
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
    # the pinned champion: at most one row (warehouse/champion.py)
    "champion_pins": {
        "model": "VARCHAR NOT NULL",
        "model_version": "VARCHAR NOT NULL",
        "pinned_at": "TIMESTAMP NOT NULL",
        "pinned_by": "VARCHAR NOT NULL",
        "reason": "VARCHAR",
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
    "store_sales_forecast": ("model_version", "store_id", "forecast_date"),
    "model_metrics": ("model", "model_version", "split", "metric"),
    "model_registry": ("model", "model_version"),
    "feature_importance": ("model", "model_version", "feature", "method"),
    "backtest_forecast": ("model", "model_version", "split", "store_id", "sale_date"),
    "series_diagnostics": ("store_id",),
    "customer_sales_clusters": ("store_id", "month"),
    "customer_sales_cluster_centers": ("cluster",),
    "training_decisions": ("run_id", "model", "model_version"),
    "champion_pins": ("model", "model_version"),
    "champion_history": ("changed_at", "event"),
}


class WriteBackError(ValueError):
    """Model output that does not fit the write-back contract."""


def ensure_ml_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {ML_SCHEMA}")
    for table, columns in TABLE_COLUMNS.items():
        cols = ", ".join(f"{name} {ddl}" for name, ddl in columns.items())
        con.execute(f"CREATE TABLE IF NOT EXISTS {ML_SCHEMA}.{table} ({cols})")


def _conform(table: str, frame: pd.DataFrame, created_at: datetime) -> pd.DataFrame:
    """Columns in contract order, created_at filled, keys checked; raise before anything is written."""
    columns = list(TABLE_COLUMNS[table])
    frame = frame.copy()
    if "created_at" in columns:
        frame["created_at"] = pd.Timestamp(created_at).tz_localize(None)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise WriteBackError(f"ml.{table}: output lacks columns {missing}")
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


def write_model_outputs(
    con: duckdb.DuckDBPyConnection,
    *,
    forecasts: pd.DataFrame,
    metrics: pd.DataFrame,
    registry: pd.DataFrame,
    feature_importance: pd.DataFrame | None = None,
    backtest: pd.DataFrame | None = None,
    series_diagnostics: pd.DataFrame | None = None,
    decisions: pd.DataFrame | None = None,
    created_at: datetime | None = None,
) -> dict[str, int]:
    """Replace the rows of every (model, model_version) in `registry` in the per-version tables, atomically.

    ``forecasts`` may also carry versions registered by an earlier run (a forecast-only refresh: ``registry`` and
    ``metrics`` then hold only the versions that refit, possibly none).  ``series_diagnostics``, when given,
    replaces that table's rows; ``decisions`` (the retraining policy's) are appended to ``ml.training_decisions``.
    """
    created_at = created_at or datetime.now(timezone.utc)
    frames = {
        "store_sales_forecast": _conform("store_sales_forecast", forecasts, created_at),
        "model_metrics": _conform("model_metrics", metrics, created_at),
        "model_registry": _conform("model_registry", registry, created_at),
    }
    if feature_importance is not None:
        frames["feature_importance"] = _conform("feature_importance", feature_importance, created_at)
    if backtest is not None:
        frames["backtest_forecast"] = _conform("backtest_forecast", backtest, created_at)
    diagnostics = None
    if series_diagnostics is not None:
        diagnostics = _conform("series_diagnostics", series_diagnostics, created_at)
    versions = frames["model_registry"][["model", "model_version"]]
    ensure_ml_tables(con)
    # A forecast-only refresh writes forecasts of versions registered by an earlier run.
    registered = pd.concat([versions, con.execute(f"SELECT model, model_version FROM {ML_SCHEMA}.model_registry").df()])
    for table in [t for t in PER_VERSION_TABLES if t in frames]:
        known = registered if table == "store_sales_forecast" else versions
        unknown = frames[table].merge(known.drop_duplicates(), how="left", indicator=True)["_merge"] == "left_only"
        if unknown.any():
            raise WriteBackError(f"ml.{table}: rows for model versions missing from the registry")

    con.execute("BEGIN TRANSACTION")
    try:
        forecast_versions = frames["store_sales_forecast"][["model", "model_version"]].drop_duplicates()
        con.register("written_versions", pd.concat([versions, forecast_versions]).drop_duplicates())
        for table, frame in frames.items():
            con.execute(
                f"DELETE FROM {ML_SCHEMA}.{table} AS t USING written_versions AS v "
                "WHERE t.model = v.model AND t.model_version = v.model_version"
            )
            con.register("incoming_rows", frame)
            con.execute(f"INSERT INTO {ML_SCHEMA}.{table} BY NAME SELECT * FROM incoming_rows")
            con.unregister("incoming_rows")
        con.unregister("written_versions")
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
