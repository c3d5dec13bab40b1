"""The insight marts (dbt_project/models/marts/insights), the forecast reports (rpt_model_accuracy,
dim_store_segment, the accuracy columns of fct_sales_forecast_monthly) and their charts, on a small
synthetic warehouse: 6 stores, 2014-01-01 .. 2015-07-31, with a supplied plan.

Expected values are recomputed here from the raw files with pandas, independently of the SQL.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_dbt_models import assert_ok, run_dbt  # noqa: E402  (shared dbt subprocess helpers)

from analytics import charts, segments  # noqa: E402
from ingestion.load import load_incoming, promote_incoming  # noqa: E402
from ingestion.synthetic import generate_dataset  # noqa: E402
from warehouse.writeback import write_model_outputs  # noqa: E402

N_STORES = 6
INSIGHT_MODELS = sorted(charts.INSIGHT_CHARTS)


def query(warehouse: Path, sql: str, params=None) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql, params or []).df()


def one(warehouse: Path, sql: str, params=None) -> pd.Series:
    df = query(warehouse, sql, params)
    assert len(df) == 1, f"expected one row, got {len(df)}: {sql}"
    return df.iloc[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("insights")
    raw_dir, warehouse = workdir / "raw", workdir / "warehouse.duckdb"
    generate_dataset(raw_dir, n_stores=N_STORES, start="2014-01-01", end="2015-07-31")
    with duckdb.connect(str(warehouse)) as con:
        load_incoming(con, raw_dir)
        promote_incoming(con)
    # the insight marts, what they are built from and the segments' input (agg_store_monthly);
    # cautious: no tests that also touch unselected models
    result = run_dbt(workdir, warehouse, "build", "--select", "+path:models/marts/insights",
                     "agg_store_monthly", "--exclude", "tag:forecast", "--indirect-selection", "cautious")
    assert_ok(result)
    sales = pd.read_csv(raw_dir / "train.csv", dtype={"StateHoliday": str}, parse_dates=["Date"])
    stores = pd.read_csv(raw_dir / "store.csv")
    plan = pd.read_csv(raw_dir / "test.csv", dtype={"StateHoliday": str}, parse_dates=["Date"])
    sales = sales.merge(stores[["Store", "StoreType", "Assortment"]], on="Store")
    return {"workdir": workdir, "warehouse": warehouse, "sales": sales, "stores": stores, "plan": plan}


@pytest.fixture(scope="module")
def open_days(built):
    s = built["sales"]
    return s[s["Open"] == 1].copy()


# --------------------------------------------------------------------------- promotions


def test_promo_effect_uplift_matches_hand_computation(built, open_days):
    row = one(built["warehouse"], "select * from marts.insight_promo_effect where grain = 'all'")
    promo, other = open_days[open_days["Promo"] == 1], open_days[open_days["Promo"] == 0]
    plain = 100 * (promo["Sales"].mean() / other["Sales"].mean() - 1)
    assert row["sales_uplift_pct"] == pytest.approx(plain, rel=1e-9)
    assert row["promo_days"] == len(promo) and row["non_promo_days"] == len(other)
    spc = 100 * ((promo["Sales"].sum() / promo["Customers"].sum())
                 / (other["Sales"].sum() / other["Customers"].sum()) - 1)
    assert row["sales_per_customer_uplift_pct"] == pytest.approx(spc, rel=1e-9)

    # like-for-like: promo days against the same store's non-promo mean on the same weekday
    cells = open_days.groupby(["Store", "DayOfWeek", "Promo"])["Sales"].agg(["sum", "count"]).unstack("Promo")
    cells = cells.dropna()
    counterfactual = (cells[("count", 1)] * cells[("sum", 0)] / cells[("count", 0)]).sum()
    like_for_like = 100 * (cells[("sum", 1)].sum() / counterfactual - 1)
    assert row["like_for_like_sales_uplift_pct"] == pytest.approx(like_for_like, rel=1e-9)
    # the synthetic data has a ~+30% promo lift
    assert 10 < row["like_for_like_sales_uplift_pct"] < 60
    assert row["like_for_like_customers_uplift_pct"] > 0


def test_promo_effect_groupings_add_up(built, open_days):
    df = query(built["warehouse"], "select * from marts.insight_promo_effect")
    assert set(df["grain"]) == {"all", "store_type", "store_type_assortment"}
    for grain in ("store_type", "store_type_assortment"):
        part = df[df["grain"] == grain]
        assert part["promo_days"].sum() == df.loc[df["grain"] == "all", "promo_days"].iloc[0]
        assert part["n_stores"].sum() == N_STORES
    by_type = df[df["grain"] == "store_type"].set_index("store_type")
    for store_type, g in open_days.groupby("StoreType"):
        expected = g.loc[g["Promo"] == 1, "Sales"].mean()
        assert by_type.loc[store_type, "avg_sales_promo"] == pytest.approx(expected)


def test_promo_effect_by_store_ranks_the_biggest_gain_first(built):
    df = query(built["warehouse"], "select * from marts.insight_promo_effect_by_store")
    assert sorted(df["store_id"]) == list(range(1, N_STORES + 1))
    ranked = df.dropna(subset=["like_for_like_sales_uplift_pct"]).sort_values("uplift_rank")
    assert ranked["uplift_rank"].tolist() == list(range(1, len(ranked) + 1))
    assert ranked["like_for_like_sales_uplift_pct"].is_monotonic_decreasing


def test_promo_distribution_history_vs_plan(built):
    df = query(built["warehouse"], "select * from marts.insight_promo_distribution")
    s, plan = built["sales"], built["plan"].merge(built["stores"][["Store", "StoreType"]], on="Store")
    assert df["history_store_days"].sum() == len(s)
    assert df["plan_store_days"].sum() == len(plan)
    assert set(df["plan_row_source"].dropna()) == {"plan"}
    mon = s[s["DayOfWeek"] == 1]
    for store_type, g in mon.groupby("StoreType"):
        r = df[(df["store_type"] == store_type) & (df["day_of_week"] == 1)].iloc[0]
        assert r["history_promo_share"] == pytest.approx(g["Promo"].mean())
        p = plan[(plan["StoreType"] == store_type) & (plan["DayOfWeek"] == 1)]
        assert r["plan_promo_share"] == pytest.approx(p["Promo"].mean())
        assert r["promo_share_diff_pp"] == pytest.approx(100 * (p["Promo"].mean() - g["Promo"].mean()))
    # promotions run Monday to Friday
    assert (df.loc[df["day_of_week"] >= 6, "history_promo_days"] == 0).all()


# --------------------------------------------------------------------------- holidays and seasons


def test_holiday_effect_christmas_week_matches_hand_computation(built):
    s = built["sales"]
    normal_days = s[(s["Open"] == 1) & (s["StateHoliday"] == "0") & (s["SchoolHoliday"] == 0)]
    normal = normal_days.groupby(["Store", "DayOfWeek"])["Sales"].mean().rename("normal").reset_index()
    # the history holds one Christmas (2014): the 7 days before are Dec 18..24
    week = s[(s["Date"] >= "2014-12-18") & (s["Date"] <= "2014-12-24") & (s["Open"] == 1)]
    week = week.merge(normal, on=["Store", "DayOfWeek"])
    expected = 100 * week["Sales"].sum() / week["normal"].sum()
    row = one(built["warehouse"], "select * from marts.insight_holiday_effect "
                                  "where holiday_kind = 'christmas' and phase = 'before'")
    assert row["sales_index"] == pytest.approx(expected, rel=1e-9)
    assert row["sales_uplift_pct"] == pytest.approx(expected - 100)
    assert row["sales_index"] > 110  # the synthetic Christmas run-up

    df = query(built["warehouse"], "select * from marts.insight_holiday_effect")
    assert set(df["holiday_kind"]) == {"public_holiday", "easter", "christmas", "school_holiday"}
    assert (df.groupby("holiday_kind")["phase"].apply(set) == {"before", "during", "after"}).all()
    during = df[(df["holiday_kind"] == "christmas") & (df["phase"] == "during")].iloc[0]
    assert during["open_share"] < 0.5  # stores close on Christmas
    assert during["sales_index_all_days"] < 50


def test_seasonality_indexes_average_100(built):
    df = query(built["warehouse"], "select * from marts.insight_seasonality")
    counts = df.groupby("grain")["period"].count().to_dict()
    assert counts["month"] == 12 and counts["day_of_week"] == 7 and 52 <= counts["week_of_year"] <= 53
    for _, g in df.groupby("grain"):
        assert g["sales_index"].mean() == pytest.approx(100, abs=1e-6)
        assert g["customers_index"].mean() == pytest.approx(100, abs=1e-6)
    month = df[df["grain"] == "month"].set_index("period")
    assert month.loc[12, "sales_index"] == month["sales_index"].max()  # Christmas
    dow = df[df["grain"] == "day_of_week"].set_index("period")
    assert dow.loc[1, "sales_index"] > dow.loc[6, "sales_index"]  # Monday catch-up, short Saturday
    assert dow.loc[7, "open_share"] < 0.5


# --------------------------------------------------------------------------- customers and formats


def test_sales_customers_correlation(built, open_days):
    df = query(built["warehouse"], "select * from marts.insight_sales_customers")
    assert df["corr_sales_customers"].between(-1, 1).all()
    overall = df[df["grain"] == "all"].iloc[0]
    assert overall["corr_sales_customers"] == pytest.approx(open_days["Sales"].corr(open_days["Customers"]))
    store = open_days[open_days["Store"] == 3]
    row = df[(df["grain"] == "store") & (df["store_id"] == 3)].iloc[0]
    assert row["corr_sales_customers"] == pytest.approx(store["Sales"].corr(store["Customers"]))
    spc = (store["Sales"] / store["Customers"]).replace(np.inf, np.nan).dropna()
    assert row["sales_per_customer_p50"] == pytest.approx(spc.quantile(0.5))
    assert row["sales_per_customer_p95"] == pytest.approx(spc.quantile(0.95))
    assert (df.loc[df["grain"] == "store", "store_id"].sort_values().tolist()
            == list(range(1, N_STORES + 1)))
    assert df.loc[df["grain"] == "store_type", "n_open_days"].sum() == overall["n_open_days"]


def test_store_format_counts(built):
    df = query(built["warehouse"], "select * from marts.insight_store_format")
    stores, s = built["stores"], built["sales"]
    assert df["n_stores"].sum() == N_STORES
    expected = stores.groupby(["StoreType", "Assortment"]).size()
    assert dict(zip(zip(df["store_type"], df["assortment"]), df["n_stores"])) == expected.to_dict()
    sundays = s[s["DayOfWeek"] == 7].groupby("Store")["Open"].mean()
    assert df["n_sunday_openers"].sum() == int((sundays > 0.5).sum())
    assert df["avg_open_days_per_week"].between(0, 7).all()


def test_competition_effect(built):
    wh, stores, s = built["warehouse"], built["stores"], built["sales"]
    bands = query(wh, "select * from marts.insight_competition_effect order by band_order")
    assert bands.iloc[0]["distance_band"] == "all" and bands.iloc[0]["n_stores"] == N_STORES
    assert bands.iloc[1:]["n_stores"].sum() == N_STORES
    by_store = query(wh, "select * from marts.insight_competition_opening_by_store")
    opened = pd.to_datetime(dict(year=stores["CompetitionOpenSinceYear"], month=stores["CompetitionOpenSinceMonth"],
                                 day=1), errors="coerce")
    first, last = s.groupby("Store")["Date"].min(), s.groupby("Store")["Date"].max()
    inside = stores.loc[(opened > stores["Store"].map(first)) & (opened <= stores["Store"].map(last))
                        & stores["CompetitionDistance"].notna(), "Store"]
    assert sorted(by_store["store_id"]) == sorted(inside)
    assert bands.iloc[0]["n_stores_opened_in_history"] == len(inside)


# --------------------------------------------------------------------------- docs and charts


def test_insight_models_documented(built):
    manifest = json.loads((built["workdir"] / "target" / "manifest.json").read_text())
    nodes = {n["name"]: n for n in manifest["nodes"].values()
             if n["resource_type"] == "model" and n["name"].startswith("insight_")}
    assert sorted(nodes) == INSIGHT_MODELS
    cols = query(built["warehouse"], "select table_name, column_name from information_schema.columns "
                                     "where table_schema = 'marts'")
    for name, node in nodes.items():
        assert node["description"].strip() and "forecast" not in node["tags"]
        actual = set(cols.loc[cols["table_name"] == name, "column_name"])
        documented = {c for c, v in node["columns"].items() if v["description"].strip()}
        assert actual == documented, name


def test_insight_charts_render(built):
    with duckdb.connect(str(built["warehouse"]), read_only=True) as con:
        md = charts.insight_charts_markdown(con)
    assert sorted(md) == INSIGHT_MODELS
    for text in md.values():
        assert text.startswith("![") and "data:image/png;base64," in text
    # an empty table renders a placeholder instead of failing
    assert charts.insight_chart_png("insight_holiday_effect", pd.DataFrame()).startswith(b"\x89PNG")


# --------------------------------------------------------------------------- forecast reports


def fake_model_outputs(warehouse: Path) -> None:
    """Two baseline versions and one random forest over the last 10 history days and the plan."""
    with duckdb.connect(str(warehouse)) as con:
        days = con.execute(
            "select store_id, sale_date as forecast_date, coalesce(sales, 5000) as s, "
            "coalesce(customers, 500) as c from marts.fct_store_daily_features "
            "where sale_date > (select max(sale_date) - 10 from marts.fct_store_daily_features "
            "where is_history)").df()
        for model, version, trained, factor, rmspe in [
                ("baseline", "v1", "2024-01-01", 1.2, 0.30), ("baseline", "v2", "2024-02-01", 1.1, 0.20),
                ("random_forest", "rf1", "2024-01-15", 0.9, 0.15)]:
            forecasts = days.assign(model=model, model_version=version, origin_date=days["forecast_date"].min(),
                                    sales_pred=days["s"] * factor,
                                    sales_lower=days["s"] * factor * 0.8, sales_upper=days["s"] * factor * 1.2,
                                    customers_pred=days["c"] * factor)
            metrics = pd.DataFrame({"model": model, "model_version": version, "split": "validation",
                                    "metric": ["rmspe", "rmse", "mae", "mape"],
                                    "value": [rmspe, 900.0, 700.0, rmspe * 100]})
            registry = pd.DataFrame([{"model": model, "model_version": version,
                                      "trained_at": pd.Timestamp(trained), "train_start": pd.Timestamp("2014-01-01"),
                                      "train_end": pd.Timestamp("2015-06-19"), "n_train_rows": 1000,
                                      "params": "{}", "artifact_path": "models/x"}])
            write_model_outputs(con, forecasts=forecasts, metrics=metrics, registry=registry)


@pytest.fixture(scope="module")
def forecast_built(built):
    workdir, warehouse = built["workdir"], built["warehouse"]
    fake_model_outputs(warehouse)
    # fct_store_daily_features etc. are already built; the forecast step before segments exist:
    before = run_dbt(workdir, warehouse, "build", "--select", "tag:forecast")
    assert_ok(before)
    empty_segments = query(warehouse, "select count(*) as n from marts.dim_store_segment")["n"].iloc[0]
    with duckdb.connect(str(warehouse)) as con:
        result = segments.compute_segments(segments.load_store_months(con), 4, k_range=(2, 6))
        segments.write_segments(con, result)
    assert_ok(run_dbt(workdir, warehouse, "build", "--select", "dim_store_segment"))
    return {**built, "empty_segments": empty_segments, "segments": result}


def test_rpt_model_accuracy(forecast_built):
    df = query(forecast_built["warehouse"], "select * from marts.rpt_model_accuracy order by model, version_number")
    assert df[["model", "model_version", "version_number", "is_latest_version"]].values.tolist() == [
        ["baseline", "v1", 1, False], ["baseline", "v2", 2, True], ["random_forest", "rf1", 1, True]]
    v2 = df[df["model_version"] == "v2"].iloc[0]
    assert v2["rmspe"] == pytest.approx(0.20) and v2["rmspe_change"] == pytest.approx(-0.10)
    assert v2["is_best_rmspe"] and str(v2["trained_at"])[:10] == "2024-02-01"
    assert pd.isna(df.loc[df["model_version"] == "v1", "previous_rmspe"].iloc[0])


def test_monthly_forecast_accuracy(forecast_built):
    df = query(forecast_built["warehouse"],
               "select * from marts.fct_sales_forecast_monthly where n_days_with_actuals > 0 and actual_sales > 0")
    assert not df.empty
    expected = 100 * (1 - (df["sales_pred_on_actual_days"] - df["actual_sales"]).abs() / df["actual_sales"])
    assert np.allclose(df["sales_accuracy_pct"], expected)
    # forecasts = actuals * factor on history days: accuracy = 100 * (1 - |factor - 1|)
    by_version = df.groupby("model_version")["sales_accuracy_pct"]
    assert by_version.min().round(6).to_dict() == {"v1": 80.0, "v2": 90.0, "rf1": 90.0}
    assert by_version.max().round(6).to_dict() == {"v1": 80.0, "v2": 90.0, "rf1": 90.0}
    plan_only = query(forecast_built["warehouse"], "select * from marts.fct_sales_forecast_monthly "
                                                   "where n_days_with_actuals = 0")
    assert plan_only["sales_accuracy_pct"].isna().all()


def test_dim_store_segment(forecast_built):
    assert forecast_built["empty_segments"] == 0  # built empty before the segments were written
    dim = query(forecast_built["warehouse"], "select * from marts.dim_store_segment order by store_id")
    clusters = forecast_built["segments"].clusters
    assert dim["store_id"].tolist() == sorted(clusters["store_id"].unique())
    counts = clusters.groupby(["store_id", "cluster"]).size().rename("n").reset_index()
    most = counts.groupby("store_id")["n"].max()
    for r in dim.itertuples():
        assert r.n_months_in_dominant_cluster == most[r.store_id]
        n = counts[(counts["store_id"] == r.store_id) & (counts["cluster"] == r.dominant_cluster)]["n"].iloc[0]
        assert n == most[r.store_id]
        assert r.n_store_months == (clusters["store_id"] == r.store_id).sum()
    centers = forecast_built["segments"].centers.set_index("cluster")
    assert np.allclose(dim["dominant_cluster_center_sales"], centers.loc[dim["dominant_cluster"], "sales"])
