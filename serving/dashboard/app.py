"""Forecast dashboard (Streamlit) over the published warehouse.

    make dashboard       # = streamlit run serving/dashboard/app.py (port $DASHBOARD_PORT, default 8501)

Reads ``$PUBLISHED_WAREHOUSE`` or ``$DATA_DIR/published/warehouse.duckdb`` read-only, one short-lived
connection per page run, so it never blocks the pipeline; a new publication shows on the next rerun.
Two pages: a store (forecast vs actual with past forecasts, monthly, model accuracy, insights) and the chain
overview. URL parameters pre-select a view: ``?store=3&model=lstm``, ``?page=chain``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # `streamlit run serving/dashboard/app.py` runs this file as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from serving.dashboard import charts, data, insights  # noqa: E402
from serving.reader import PublishedWarehouseMissing, open_published  # noqa: E402

PAGES = {"store": "Store", "chain": "Chain overview"}
# Streamlit's own chrome: .streamlit/config.toml sets toolbarMode = "viewer"; this hides what is left of it
HIDE_CHROME = """<style>
[data-testid="stToolbar"], [data-testid="stAppDeployButton"], [data-testid="stMainMenu"],
[data-testid="stDecoration"], #MainMenu, footer {display: none !important; visibility: hidden;}
</style>"""


def _pick(options: list, wanted, default_index: int = 0) -> int:
    try:
        return options.index(wanted)
    except ValueError:
        return default_index


def _rmspe(value) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.3f}"


def store_page(con, version_id: str, overview: dict) -> None:
    stores, latest = overview["stores"], overview["latest"]
    store_ids = stores["store_id"].astype(int).tolist()
    wanted_store = st.query_params.get("store")
    store_id = st.sidebar.selectbox(
        "Store", store_ids, index=_pick(store_ids, int(wanted_store) if str(wanted_store).isdigit() else None))
    models = latest["model"].tolist()  # the champion first
    champion = latest.set_index("model")["is_champion"]
    model = st.sidebar.selectbox("Model", models, index=_pick(models, st.query_params.get("model")),
                                 format_func=lambda m: f"{m} (champion)" if champion[m] else m)
    history_days = st.sidebar.slider("History shown (days)", 28, 365, 140, step=7)
    st.query_params.update({"store": str(store_id), "model": model})
    d = data.load_store(version_id, int(store_id), int(history_days), con)
    tables = {t: data.load_insight(version_id, t, con) for t in overview["insight_tables"]}

    store = stores.loc[stores["store_id"] == store_id].iloc[0]
    chosen = latest.loc[latest["model"] == model].iloc[0]
    fc = d["forecast"].loc[d["forecast"]["model"] == model]
    acc = d["accuracy"].loc[d["accuracy"]["model"] == model]
    store_rmspe = acc["store_rmspe"].iat[0] if len(acc) else None
    chain_rmspe = acc["chain_rmspe"].iat[0] if len(acc) else chosen["validation_rmspe"]
    c1, c2, c3, c4, c5 = st.columns(5)
    c1.metric("Store", str(store_id))
    c2.metric("Forecast, whole horizon", f"{fc['sales_pred'].sum():,.0f}")
    c3.metric("Model", model)
    c4.metric("Store RMSPE (validation)", _rmspe(store_rmspe),
              delta=None if store_rmspe is None or pd.isna(store_rmspe) or pd.isna(chain_rmspe)
              else f"{store_rmspe - chain_rmspe:+.3f} vs chain", delta_color="inverse",
              help="Kaggle RMSPE of this store's open days in the last 42 days of history, forecast by the "
                   "model's latest version before seeing them (lower is better)")
    c5.metric("Chain RMSPE (validation)", _rmspe(chain_rmspe), help="The same over every store")
    if len(fc):
        st.caption(f"Store {store_id}: type {store.get('store_type', '?')}, assortment {store.get('assortment', '?')}"
                   f" · forecast {pd.Timestamp(fc['date'].min()):%d %b %Y} to {pd.Timestamp(fc['date'].max()):%d %b %Y}"
                   f" · {model} trained {pd.Timestamp(chosen['trained_at']):%d %b %Y %H:%M}")

    tab_daily, tab_monthly, tab_models, tab_insights = st.tabs(
        ["Forecast vs actual", "Monthly", "Model accuracy", "Insights"])
    with tab_daily:
        level = chosen["interval_level"]
        st.altair_chart(charts.forecast_chart(d["actual"], d["backtest"], d["forecast"], model, int(store_id),
                                              None if pd.isna(level) else float(level)), width="stretch")
        st.caption("Past forecasts: what the model's latest version forecast for each backtest period, trained "
                   "only on the days before it. The dashed line marks the first forecast day.")
        with st.expander("Forecast rows"):
            st.dataframe(insights.tidy(fc.drop(columns=["model", "model_version"])), hide_index=True,
                         width="stretch")
    with tab_monthly:
        st.altair_chart(charts.monthly_chart(d["monthly_actual"], d["monthly_forecast"], model), width="stretch")
        partial = d["monthly_forecast"].loc[(d["monthly_forecast"]["model"] == model)
                                            & d["monthly_forecast"]["is_partial"]]
        if len(partial):
            st.caption("Partial months (pale bars) hold only the forecast days: " + ", ".join(
                f"{pd.Timestamp(r.month_start):%b %Y} ({r.n_days} of {r.days_in_month} days)"
                for r in partial.itertuples()))
    with tab_models:
        metric = st.radio("Metric", data.ACCURACY_METRICS, horizontal=True)
        st.altair_chart(charts.accuracy_chart(overview["accuracy"], metric), width="stretch")
        st.dataframe(insights.tidy(latest.drop(columns=["model_version"]).rename(
            columns={"weighted_rmspe": "weighted RMSPE (champion rule)", "mean_rmspe": "mean RMSPE (validation + backtests)"})), hide_index=True, width="stretch")
    with tab_insights:
        if not tables:
            st.info("No insight tables in this published version.")
        for table, frame in tables.items():
            insights.render(table, frame)


def chain_page(con, version_id: str, overview: dict) -> None:
    c = data.load_chain(version_id, con)
    champion = overview["latest"].loc[overview["latest"]["is_champion"]]
    fc = c["daily"].loc[c["daily"]["series"] == "forecast"]
    change = c["change"]
    total, recent = change["forecast_sales"].sum(), change["recent_sales"].sum()
    worst = c["worst"]
    k1, k2, k3, k4 = st.columns(4)
    k1.metric("Total forecast, whole horizon", f"{total:,.0f}",
              delta=None if not recent else f"{100 * (total / recent - 1):+.1f}% vs the {len(fc)} days before")
    k2.metric("Stores", f"{len(change):,}")
    k3.metric("Champion model", champion["model"].iat[0] if len(champion) else "n/a")
    k4.metric("Chain RMSPE (validation)", _rmspe(worst["chain_rmspe"].iat[0] if len(worst) else None))
    if len(fc):
        st.caption(f"Forecast {pd.Timestamp(fc['date'].min()):%d %b %Y} to {pd.Timestamp(fc['date'].max()):%d %b %Y}"
                   " by the champion (the latest version with the lowest recency-weighted mean RMSPE).")
    st.altair_chart(charts.chain_daily_chart(c["daily"]), width="stretch")
    left, right = st.columns(2)
    with left:
        st.subheader("Largest expected change")
        st.caption("Forecast over the horizon vs the same number of days just before it (%).")
        top = change.dropna(subset=["change_pct"]).head(10)
        st.altair_chart(charts.store_bars(top, "change_pct", "change %", ",.1f"), width="stretch")
        st.dataframe(insights.tidy(top), hide_index=True, width="stretch")
    with right:
        st.subheader("Least accurate stores recently")
        st.caption("Each store's RMSPE on the last 42 days of history; dashed line: the chain's.")
        top = worst.head(10)
        st.altair_chart(charts.store_bars(top, "store_rmspe", "RMSPE", ".3f",
                                          rule=float(top["chain_rmspe"].iat[0]) if len(top) else None),
                        width="stretch")
        st.dataframe(insights.tidy(top), hide_index=True, width="stretch")


def main() -> None:
    st.set_page_config(page_title="Rossmann forecasts", layout="wide", menu_items={})
    st.markdown(HIDE_CHROME, unsafe_allow_html=True)
    pages = list(PAGES)
    page = st.sidebar.radio("Page", pages, index=_pick(pages, st.query_params.get("page")),
                            format_func=PAGES.get)
    st.query_params["page"] = page
    st.title("Rossmann sales forecasts" if page == "store" else "Rossmann sales forecasts: chain overview")
    try:
        with open_published() as con:
            version_id = con.execute("SELECT version_id FROM meta.publication").fetchall()[0][0]
            overview = data.load_overview(version_id, con)
            if overview["stores"].empty or overview["latest"].empty:
                st.warning("The published warehouse has no stores or no forecasts yet.")
                return
            st.caption(f"Data published {pd.Timestamp(overview['published_at']):%d %b %Y, %H:%M} UTC")
            (store_page if page == "store" else chain_page)(con, version_id, overview)
    except PublishedWarehouseMissing:
        st.error("No published warehouse yet: a successful pipeline run publishes one (make run).")


main()
