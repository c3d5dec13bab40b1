"""Customer-sales segments (analytics.segments) and their charts, on small hand-made store-months."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from analytics import charts
from analytics.segments import (CENTERS_TABLE, CLUSTERS_TABLE, DEFAULT_N_CLUSTERS, SegmentsError,
                                  compute_segments, load_store_months, run_segments, write_segments)

# three well separated groups of stores (monthly customers, sales) and 12 months each
GROUPS = {0: (5_000.0, 40_000.0), 1: (12_000.0, 110_000.0), 2: (30_000.0, 200_000.0)}
STORES_PER_GROUP = 8


def make_store_months(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    months = pd.date_range("2014-01-01", periods=12, freq="MS")
    rows = []
    for group, (customers, sales) in GROUPS.items():
        for i in range(STORES_PER_GROUP):
            store = group * STORES_PER_GROUP + i + 1
            rows.append(pd.DataFrame({
                "store_id": store, "month": months,
                "customers": customers * (1 + 0.03 * rng.standard_normal(len(months))),
                "sales": sales * (1 + 0.03 * rng.standard_normal(len(months))),
            }))
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def store_months():
    return make_store_months()


@pytest.fixture(scope="module")
def three(store_months):
    return compute_segments(store_months, 3, k_range=(2, 8))


def test_k_is_respected_and_groups_recovered(store_months, three):
    clusters, centers = three.clusters, three.centers
    assert three.n_clusters == 3 and len(centers) == 3
    assert sorted(clusters["cluster"].unique()) == [0, 1, 2]
    assert len(clusters) == len(store_months)
    # renumbered by centre sales: cluster g is group g, and every store stays in its group
    group = (clusters["store_id"] - 1) // STORES_PER_GROUP
    assert (clusters["cluster"] == group).all()
    assert centers["sales"].is_monotonic_increasing
    assert centers["n_store_months"].tolist() == [12 * STORES_PER_GROUP] * 3
    assert centers["n_store_months"].sum() == len(store_months)


def test_centres_in_original_units(store_months, three):
    means = three.clusters.groupby("cluster")[["customers", "sales"]].mean()
    assert np.allclose(three.centers[["customers", "sales"]].to_numpy(), means.to_numpy(), rtol=1e-6)
    for cluster, (customers, sales) in GROUPS.items():
        row = three.centers.iloc[cluster]
        assert row["customers"] == pytest.approx(customers, rel=0.02)
        assert row["sales"] == pytest.approx(sales, rel=0.02)
    # the output keeps the input's values
    merged = three.clusters.merge(store_months.assign(month=store_months["month"].dt.date),
                                  on=["store_id", "month"], suffixes=("", "_in"))
    assert np.allclose(merged["sales"], merged["sales_in"]) and len(merged) == len(store_months)


def test_silhouette_table(store_months, three):
    sil = three.silhouette
    assert sil["k"].tolist() == list(range(2, 9))
    assert sil["silhouette"].between(-1, 1).all()
    assert three.best_k == 3  # three separated blobs
    assert three.chosen_silhouette == pytest.approx(sil.loc[sil["k"] == 3, "silhouette"].iloc[0])
    assert three.chosen_silhouette > 0.7
    meta = three.metadata()
    assert meta["n_clusters"] == 3 and meta["best_k_by_silhouette"] == 3 and meta["n_stores"] == 24
    assert "| 3 **(chosen)** |" in meta["silhouette_table"]


def test_default_k_and_range(store_months):
    result = compute_segments(store_months)  # k = 20, silhouette for k = 4..30
    assert DEFAULT_N_CLUSTERS == 20
    assert result.n_clusters == 20 and result.clusters["cluster"].nunique() == 20
    assert result.silhouette["k"].tolist() == list(range(4, 31))
    assert result.centers["cluster"].tolist() == list(range(20))
    # deterministic
    again = compute_segments(store_months)
    pd.testing.assert_frame_equal(result.clusters, again.clusters)
    pd.testing.assert_frame_equal(result.silhouette, again.silhouette)


def test_few_store_months_get_fewer_clusters_with_a_warning(store_months, caplog):
    with caplog.at_level("WARNING", logger="analytics.segments"):
        result = compute_segments(store_months.head(5), 20)
    assert result.n_clusters == 4 and len(result.centers) == 4 and result.clusters["cluster"].nunique() == 4
    assert "only 5 complete store-months: 4 clusters instead of 20" in caplog.text


def test_too_few_store_months(store_months):
    with pytest.raises(SegmentsError, match="2 complete store-months .* at least 3 are needed"):
        compute_segments(store_months.head(2), 20)
    with pytest.raises(SegmentsError):
        compute_segments(store_months.drop(columns="sales"), 3)


def table(con, name):
    return con.execute(f"select * from ml.{name} order by all").df()


def test_writer_replaces_and_is_idempotent(store_months, three):
    con = duckdb.connect()
    assert write_segments(con, three) == {CLUSTERS_TABLE: len(store_months), CENTERS_TABLE: 3}
    first = table(con, CLUSTERS_TABLE), table(con, CENTERS_TABLE)
    write_segments(con, three.clusters, three.centers)  # same content again: no duplicates
    pd.testing.assert_frame_equal(table(con, CLUSTERS_TABLE), first[0])
    pd.testing.assert_frame_equal(table(con, CENTERS_TABLE), first[1])
    types = dict(con.execute("select column_name, data_type from information_schema.columns "
                             f"where table_schema = 'ml' and table_name = '{CLUSTERS_TABLE}'").fetchall())
    assert types == {"store_id": "INTEGER", "month": "DATE", "cluster": "INTEGER",
                     "customers": "DOUBLE", "sales": "DOUBLE"}

    # a new result replaces the old one entirely
    two = compute_segments(store_months[store_months["store_id"] <= 16], 2, k_range=(2, 4))
    write_segments(con, two)
    assert len(table(con, CLUSTERS_TABLE)) == 16 * 12 and len(table(con, CENTERS_TABLE)) == 2

    # a bad write leaves the tables as they were
    broken = two.clusters.copy()
    broken.loc[0, "cluster"] = 7  # no such centre
    with pytest.raises(SegmentsError):
        write_segments(con, broken, two.centers)
    duplicated = pd.concat([two.clusters, two.clusters.head(1)])
    with pytest.raises(SegmentsError):
        write_segments(con, duplicated, two.centers)
    assert len(table(con, CLUSTERS_TABLE)) == 16 * 12 and len(table(con, CENTERS_TABLE)) == 2


def test_load_store_months_keeps_complete_months(store_months):
    con = duckdb.connect()
    con.execute("create schema marts")
    monthly = store_months.rename(columns={"month": "month_start"}).assign(
        n_days=store_months["month"].dt.days_in_month)
    monthly.loc[0, "n_days"] = 10          # a partial month (gap): left out
    monthly.loc[1, "customers"] = 0.0      # closed all month: left out
    con.register("monthly_df", monthly)
    con.execute("create table marts.agg_store_monthly as select * from monthly_df")
    loaded = load_store_months(con)
    assert len(loaded) == len(store_months) - 2
    assert list(loaded.columns) == ["store_id", "month", "customers", "sales"]
    assert len(load_store_months(con, complete_months_only=False)) == len(store_months) - 1
    result = run_segments(con, 3, k_range=(2, 4))
    assert con.execute(f"select count(*) from ml.{CLUSTERS_TABLE}").fetchone()[0] == len(loaded)
    assert result.n_clusters == 3


def test_segment_charts(three):
    png = charts.chart_silhouette(three.silhouette, three.n_clusters)
    assert png.startswith(b"\x89PNG")
    assert charts.chart_segments(three.clusters, three.centers).startswith(b"\x89PNG")
    md = charts.segments_markdown(three)
    assert md.count("](data:image/png;base64,") == 2
    assert charts.chart_silhouette(three.silhouette.iloc[0:0]).startswith(b"\x89PNG")
