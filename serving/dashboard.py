"""Forecast dashboard (Streamlit) over the published warehouse.

    make dashboard       # = streamlit run serving/dashboard.py (port $DASHBOARD_PORT, default 8501)

Reads ``$PUBLISHED_WAREHOUSE`` or ``$DATA_DIR/published/warehouse.duckdb`` read-only, one short-lived
connection per page run, so it never blocks the pipeline; a new publication shows on the next rerun.
URL parameters pre-select a view: ``?store=3&model=lstm``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # `streamlit run serving/dashboard.py` runs this file as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import altair as alt  # noqa: E402
import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from serving.reader import PublishedWarehouseMissing, open_published, published_path  # noqa: E402

ACCURACY_METRICS = ["rmspe", "rmse", "mae", "mape"]


def _frame(con, sql: str, params: list | None = None) -> pd.DataFrame:
    return con.execute(sql, params or []).df()


# Every loader is keyed by the published version (and its arguments); `_con` is not hashed. A loader
# that misses runs on the same connection that read the version id, so a page never mixes versions.


@st.cache_data(max_entries=8, show_spinner=False)
def load_overview(version_id: str, _con) -> dict:
    stores = _frame(_con, "SELECT * FROM marts.dim_stores ORDER BY store_id")
    accuracy = _frame(_con, f"""
        SELECT model, model_version, trained_at, {", ".join(ACCURACY_METRICS)}
        FROM marts.rpt_model_accuracy WHERE split = 'validation' ORDER BY trained_at""")
    # each model's latest version, the champion first (dbt's rank: by mean RMSPE)
    latest = _frame(_con, """
        SELECT model, model_version, trained_at, validation_rmspe, mean_rmspe, interval_level, rank, is_champion
        FROM marts.dim_model_versions WHERE is_latest ORDER BY rank""")
    insight_tables = [r[0] for r in _con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'marts' AND table_name LIKE 'insight\\_%' ESCAPE '\\' ORDER BY 1").fetchall()]
    publication = _frame(_con, "SELECT * FROM meta.publication")
    return {"stores": stores, "accuracy": accuracy, "latest": latest,
            "insight_tables": insight_tables, "publication": publication}


@st.cache_data(max_entries=64, show_spinner=False)
def load_store(version_id: str, store_id: int, history_days: int, _con) -> dict:
    forecast = _frame(_con, """
        SELECT forecast_date AS date, model, model_version, sales_pred, sales_lower, sales_upper, customers_pred
        FROM marts.fct_sales_forecast
        WHERE store_id = ? AND is_latest_version
        ORDER BY model, forecast_date""", [store_id])
    monthly_forecast = _frame(_con, """
        SELECT month_start, model, sales_pred, sales_lower, sales_upper
        FROM marts.fct_sales_forecast_monthly
        WHERE store_id = ? AND is_latest_version
        ORDER BY model, month_start""", [store_id])
    actual = _frame(_con, """
        SELECT sale_date AS date, sales, customers, is_open, is_promo
        FROM marts.fct_store_daily_features
        WHERE store_id = ? AND is_history
          AND sale_date > (SELECT max(sale_date) FROM marts.fct_store_daily_features
                           WHERE store_id = ? AND is_history) - ?
        ORDER BY sale_date""", [store_id, store_id, history_days])
    monthly_actual = _frame(_con, """
        SELECT month_start, sales FROM marts.agg_store_monthly WHERE store_id = ? ORDER BY month_start""",
                            [store_id])
    return {"forecast": forecast, "monthly_forecast": monthly_forecast, "actual": actual,
            "monthly_actual": monthly_actual}


@st.cache_data(max_entries=16, show_spinner=False)
def load_insight(version_id: str, table: str, _con) -> pd.DataFrame:
    return _frame(_con, f'SELECT * FROM marts."{table}" LIMIT 1000')


def forecast_chart(actual: pd.DataFrame, forecast: pd.DataFrame, model: str, store_id: int,
                   level: float | None) -> alt.LayerChart:
    fc = forecast.loc[forecast["model"] == model].copy()
    fc["date"] = pd.to_datetime(fc["date"])
    act = actual.assign(date=pd.to_datetime(actual["date"]), series="actual")[["date", "sales", "series"]]
    label = f"forecast ({model})"
    colour = alt.Color("series:N", title=None,
                       scale=alt.Scale(domain=["actual", label], range=["#1f77b4", "#e45756"]))
    band = alt.Chart(fc).mark_area(opacity=0.25, color="#e45756").encode(
        x=alt.X("date:T", title=None), y=alt.Y("sales_lower:Q", title="sales"), y2="sales_upper:Q",
        tooltip=[alt.Tooltip("date:T"), alt.Tooltip("sales_lower:Q", format=",.0f"),
                 alt.Tooltip("sales_upper:Q", format=",.0f")])
    pred = alt.Chart(fc.assign(series=label)).mark_line(point=True).encode(
        x="date:T", y="sales_pred:Q", color=colour,
        tooltip=[alt.Tooltip("date:T"), alt.Tooltip("sales_pred:Q", format=",.0f", title="forecast")])
    hist = alt.Chart(act).mark_line().encode(
        x="date:T", y="sales:Q", color=colour,
        tooltip=[alt.Tooltip("date:T"), alt.Tooltip("sales:Q", format=",.0f", title="actual")])
    return (band + hist + pred).properties(
        height=380, title=f"Store {store_id}: daily sales, actual vs {model} forecast"
        + (f" ({level:.0%} interval)" if level else ""))


def monthly_chart(monthly_actual: pd.DataFrame, monthly_forecast: pd.DataFrame, model: str) -> alt.Chart:
    fm = monthly_forecast.loc[monthly_forecast["model"] == model]
    act = monthly_actual.tail(12)
    rows = pd.concat([
        act.assign(kind="actual").rename(columns={"sales": "value"})[["month_start", "kind", "value"]],
        fm.assign(kind=f"forecast ({model})").rename(columns={"sales_pred": "value"})[["month_start", "kind", "value"]],
    ], ignore_index=True)
    rows["month"] = pd.to_datetime(rows["month_start"]).dt.strftime("%Y-%m")
    return alt.Chart(rows).mark_bar().encode(
        x=alt.X("month:O", title=None), y=alt.Y("value:Q", title="sales per month"),
        color=alt.Color("kind:N", title=None), xOffset="kind:N",
        tooltip=["month", "kind", alt.Tooltip("value:Q", format=",.0f")]).properties(height=320)


def accuracy_chart(accuracy: pd.DataFrame, metric: str) -> alt.Chart:
    return alt.Chart(accuracy).mark_line(point=True).encode(
        x=alt.X("trained_at:T", title="trained at"), y=alt.Y(f"{metric}:Q", title=f"validation {metric}"),
        color=alt.Color("model:N"), tooltip=["model", "model_version", alt.Tooltip(f"{metric}:Q", format=".4f")],
    ).properties(height=320, title=f"Validation {metric} per model version")


def _pick(options: list, wanted, default_index: int = 0) -> int:
    try:
        return options.index(wanted)
    except ValueError:
        return default_index


def main() -> None:
    st.set_page_config(page_title="Rossmann forecasts", layout="wide")
    st.title("Rossmann sales forecasts")
    try:
        with open_published() as con:
            version_id = con.execute("SELECT version_id FROM meta.publication").fetchall()[0][0]
            overview = load_overview(version_id, con)
            stores = overview["stores"]
            latest = overview["latest"]
            if stores.empty or latest.empty:
                st.warning("The published warehouse has no stores or no forecasts yet.")
                return
            store_ids = stores["store_id"].astype(int).tolist()
            wanted_store = st.query_params.get("store")
            store_id = st.sidebar.selectbox(
                "Store", store_ids,
                index=_pick(store_ids, int(wanted_store) if str(wanted_store).isdigit() else None))
            models = latest["model"].tolist()  # the champion first
            model = st.sidebar.selectbox(
                "Model", models, index=_pick(models, st.query_params.get("model")),
                format_func=lambda m: f"{m} (champion)" if latest.set_index("model").at[m, "is_champion"] else m)
            history_days = st.sidebar.slider("History shown (days)", 28, 365, 120, step=7)
            st.query_params.update({"store": str(store_id), "model": model})
            data = load_store(version_id, int(store_id), int(history_days), con)
            insights = {t: load_insight(version_id, t, con) for t in overview["insight_tables"]}
    except PublishedWarehouseMissing as exc:
        st.error(f"{exc}")
        return

    pub = overview["publication"].iloc[0]
    st.caption(f"Published version `{pub['version_id']}` at {pub['published_at']:%Y-%m-%d %H:%M} UTC "
               f"(run `{pub['source_run']}`) · `{published_path()}`")
    store = stores.loc[stores["store_id"] == store_id].iloc[0]
    chosen = latest.loc[latest["model"] == model].iloc[0]
    fc = data["forecast"].loc[data["forecast"]["model"] == model]
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Store", str(store_id))
    c2.metric("Forecast, whole horizon", f"{fc['sales_pred'].sum():,.0f}")
    c3.metric("Model", model)
    c4.metric("Validation RMSPE", "n/a" if pd.isna(chosen["validation_rmspe"]) else f"{chosen['validation_rmspe']:.3f}",
              help="Kaggle RMSPE on the last 42 days of history (open days with sales)")
    st.caption(f"Store {store_id}: type {store.get('store_type', '?')}, assortment {store.get('assortment', '?')}"
               f" · forecast {pd.Timestamp(fc['date'].min()):%Y-%m-%d} .. {pd.Timestamp(fc['date'].max()):%Y-%m-%d}"
               f" · {model} version "
               f"`{chosen['model_version']}`")

    tab_daily, tab_monthly, tab_models, tab_insights = st.tabs(
        ["Forecast vs actual", "Monthly", "Model accuracy", "Insights"])
    with tab_daily:
        level = chosen["interval_level"]
        st.altair_chart(forecast_chart(data["actual"], data["forecast"], model, int(store_id),
                                       None if pd.isna(level) else float(level)), width="stretch")
        with st.expander("Forecast rows"):
            st.dataframe(fc.drop(columns=["model"]), hide_index=True, width="stretch")
    with tab_monthly:
        st.altair_chart(monthly_chart(data["monthly_actual"], data["monthly_forecast"], model), width="stretch")
    with tab_models:
        metric = st.radio("Metric", ACCURACY_METRICS, horizontal=True)
        st.altair_chart(accuracy_chart(overview["accuracy"], metric), width="stretch")
        st.dataframe(latest.rename(columns={"mean_rmspe": "mean_rmspe (validation + backtests)"}),
                     hide_index=True, width="stretch")
    with tab_insights:
        if not insights:
            st.info("No insight tables (marts.insight_*) in this published version.")
        for table, frame in insights.items():
            st.subheader(table.removeprefix("insight_").replace("_", " ").capitalize())
            st.dataframe(frame, hide_index=True, width="stretch")


main()
