"""Customer-sales segments: KMeans on the (customers, sales) of store-months.

Analysts turn the customers-sales relationship into classes by clustering store-months on their
standardised monthly customers and sales. This module does that for the warehouse:

    store_months = load_store_months(con)                 # marts.agg_store_monthly, complete months
    result = compute_segments(store_months, n_clusters=20)
    write_segments(con, result)                           # ml.customer_sales_clusters / _centers

`result.silhouette` holds the silhouette score of every k in 4..30 (on a fixed random sample of the
store-months, so it stays fast on the ~30k store-months of the real data); the chosen k is the
configured one (default 20), `result.best_k` the k with the best silhouette.

Clusters are renumbered by their centre's monthly sales (0 = lowest, then by customers), so the
numbers mean the same from run to run and read naturally in BI. Centres are in original units (the
inverse transform of the scaled KMeans centres = the mean customers and sales of the members).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler

from warehouse.writeback import ML_SCHEMA, WriteBackError, replace_tables

log = logging.getLogger(__name__)

CLUSTERS_TABLE = "customer_sales_clusters"
CENTERS_TABLE = "customer_sales_cluster_centers"

DEFAULT_N_CLUSTERS = 20
DEFAULT_K_RANGE = (4, 30)              # silhouette reported for k = 4 .. 30 (inclusive)
DEFAULT_SILHOUETTE_SAMPLE_SIZE = 3000  # store-months the silhouette is computed on (fixed sample)
DEFAULT_RANDOM_STATE = 42
DEFAULT_N_INIT = 4                     # KMeans restarts of the model that is written
DEFAULT_SWEEP_N_INIT = 1               # restarts per k of the silhouette sweep (27 fits: keep it fast)
DEFAULT_SWEEP_SAMPLE_SIZE = 10000      # store-months the sweep's models are fitted on (fixed sample)



class SegmentsError(ValueError):
    """Input or output of the segmentation that does not fit (too few store-months, bad frames)."""


@dataclass
class SegmentResult:
    """Outcome of `compute_segments`.

    clusters:   store_id, month, cluster, customers, sales          (one row per store-month)
    centers:    cluster, customers, sales, n_store_months           (original units)
    silhouette: k, silhouette, inertia_per_row                      (one row per k of the range;
                inertia_per_row = KMeans inertia / rows fitted, the mean squared distance to the
                centre in standardised units, comparable across k: the "elbow" curve)
    """

    clusters: pd.DataFrame
    centers: pd.DataFrame
    silhouette: pd.DataFrame
    n_clusters: int
    best_k: int | None
    chosen_silhouette: float | None
    params: dict = field(default_factory=dict)

    def metadata(self) -> dict[str, object]:
        """Plain values for Dagster asset metadata (wrap the table with MetadataValue.md)."""
        best = None if self.best_k is None else float(
            self.silhouette.loc[self.silhouette["k"] == self.best_k, "silhouette"].iloc[0])
        return {
            "n_clusters": int(self.n_clusters),
            "n_store_months": int(len(self.clusters)),
            "n_stores": int(self.clusters["store_id"].nunique()),
            "silhouette_chosen_k": None if self.chosen_silhouette is None else float(self.chosen_silhouette),
            "best_k_by_silhouette": None if self.best_k is None else int(self.best_k),
            "silhouette_best_k": best,
            "silhouette_table": silhouette_markdown(self.silhouette, self.n_clusters),
        }


def load_store_months(con: duckdb.DuckDBPyConnection, *, complete_months_only: bool = True) -> pd.DataFrame:
    """Store-months (store_id, month, customers, sales) from marts.agg_store_monthly.

    complete_months_only: keep only months the store's history covers on every calendar day (a
    refurbishment gap or the partial first/last month of the history would otherwise form low
    "clusters" of their own); months without any customers (closed all month) are left out too.
    """
    coverage = "and n_days = day(last_day(month_start))" if complete_months_only else ""
    return con.execute(
        f"""
        select
            cast(store_id as integer) as store_id,
            cast(month_start as date) as month,
            cast(customers as double) as customers,
            cast(sales as double) as sales
        from marts.agg_store_monthly
        where customers > 0 {coverage}
        order by store_id, month
        """
    ).df()


def _fit(x_scaled: np.ndarray, k: int, random_state: int, n_init: int) -> KMeans:
    return KMeans(n_clusters=k, n_init=n_init, random_state=random_state).fit(x_scaled)


def _silhouette(x_scaled: np.ndarray, labels: np.ndarray, sample_size: int, random_state: int) -> float:
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(silhouette_score(x_scaled, labels, sample_size=min(sample_size, len(x_scaled)),
                                  random_state=random_state))


def silhouette_scores(x_scaled: np.ndarray, k_values, *, sample_size: int = DEFAULT_SILHOUETTE_SAMPLE_SIZE,
                      random_state: int = DEFAULT_RANDOM_STATE, n_init: int = DEFAULT_SWEEP_N_INIT,
                      models: dict[int, KMeans] | None = None) -> pd.DataFrame:
    """Silhouette (on a fixed random sample of the rows) and inertia per row of KMeans for each k.

    `models` may hold already fitted models by k (used instead of a new fit). k < 2 and
    k >= number of rows are skipped.
    """
    n = len(x_scaled)
    rows = []
    for k in k_values:
        if k < 2 or k >= n:
            continue
        model = (models or {}).get(k) or _fit(x_scaled, k, random_state, n_init)
        rows.append({"k": int(k), "silhouette": _silhouette(x_scaled, model.labels_, sample_size, random_state),
                     "inertia_per_row": float(model.inertia_) / n})
    return pd.DataFrame(rows, columns=["k", "silhouette", "inertia_per_row"])


def compute_segments(store_months: pd.DataFrame, n_clusters: int = DEFAULT_N_CLUSTERS, *,
                     k_range: tuple[int, int] = DEFAULT_K_RANGE,
                     silhouette_sample_size: int = DEFAULT_SILHOUETTE_SAMPLE_SIZE,
                     random_state: int = DEFAULT_RANDOM_STATE, n_init: int = DEFAULT_N_INIT,
                     sweep_n_init: int = DEFAULT_SWEEP_N_INIT,
                     sweep_sample_size: int = DEFAULT_SWEEP_SAMPLE_SIZE) -> SegmentResult:
    """Cluster store-months on standardised (customers, sales) with KMeans(n_clusters).

    store_months: columns store_id, month, customers, sales (one row per store-month).
    k_range: inclusive (first, last) k of the silhouette table. The sweep fits every k with
    `sweep_n_init` restarts on a fixed random sample of `sweep_sample_size` store-months and scores
    the silhouette on `silhouette_sample_size` of them; the chosen k's row is the written model
    (all store-months, `n_init` restarts). Deterministic for a given input and random_state.
    """
    required = ["store_id", "month", "customers", "sales"]
    missing = [c for c in required if c not in store_months.columns]
    if missing:
        raise SegmentsError(f"store-months lack columns {missing}")
    frame = store_months[required].dropna().copy()
    if frame.duplicated(["store_id", "month"]).any():
        raise SegmentsError("store-months repeat a (store_id, month)")
    n_clusters = int(n_clusters)
    if n_clusters < 2:
        raise SegmentsError(f"n_clusters must be at least 2, got {n_clusters}")
    if len(frame) < 3:  # k clusters need more than k rows (silhouette), and k >= 2
        raise SegmentsError(f"{len(frame)} complete store-months with customers are too few for segments: at least 3 "
                            "are needed (e.g. one store with 3 whole calendar months of history)")
    if len(frame) <= n_clusters:
        log.warning("only %d complete store-months: %d clusters instead of %d", len(frame), len(frame) - 1,
                    n_clusters)
        n_clusters = len(frame) - 1

    x = frame[["customers", "sales"]].to_numpy(dtype=float)
    scaler = StandardScaler().fit(x)
    x_scaled = scaler.transform(x)

    model = _fit(x_scaled, n_clusters, random_state, n_init)
    rng = np.random.default_rng(random_state)
    sweep_rows = (np.sort(rng.choice(len(x_scaled), sweep_sample_size, replace=False))
                  if len(x_scaled) > sweep_sample_size else np.arange(len(x_scaled)))
    k_values = [k for k in range(k_range[0], k_range[1] + 1) if k != n_clusters]
    silhouette = silhouette_scores(x_scaled[sweep_rows], k_values, sample_size=silhouette_sample_size,
                                   random_state=random_state, n_init=sweep_n_init)
    chosen_score = _silhouette(x_scaled, model.labels_, silhouette_sample_size, random_state)
    if k_range[0] <= n_clusters <= k_range[1]:
        silhouette = pd.concat([silhouette, pd.DataFrame([{
            "k": n_clusters, "silhouette": chosen_score,
            "inertia_per_row": float(model.inertia_) / len(x_scaled)}])])
        silhouette = silhouette.sort_values("k", ignore_index=True)

    # centres back in original units, renumbered by (sales, customers) ascending
    centers_raw = scaler.inverse_transform(model.cluster_centers_)
    order = np.lexsort((centers_raw[:, 0], centers_raw[:, 1]))  # primary: sales, then customers
    relabel = np.empty(n_clusters, dtype=int)
    relabel[order] = np.arange(n_clusters)
    labels = relabel[model.labels_]

    clusters = pd.DataFrame({
        "store_id": frame["store_id"].astype("int32").to_numpy(),
        "month": pd.to_datetime(frame["month"]).dt.date.to_numpy(),
        "cluster": labels.astype("int32"),
        "customers": frame["customers"].to_numpy(dtype=float),
        "sales": frame["sales"].to_numpy(dtype=float),
    }).sort_values(["store_id", "month"], ignore_index=True)
    counts = np.bincount(labels, minlength=n_clusters)
    centers = pd.DataFrame({
        "cluster": np.arange(n_clusters, dtype="int32"),
        "customers": centers_raw[order, 0],
        "sales": centers_raw[order, 1],
        "n_store_months": counts.astype("int64"),
    })

    valid = silhouette.dropna(subset=["silhouette"])
    best_k = int(valid.loc[valid["silhouette"].idxmax(), "k"]) if not valid.empty else None
    return SegmentResult(
        clusters=clusters, centers=centers, silhouette=silhouette, n_clusters=n_clusters,
        best_k=best_k, chosen_silhouette=chosen_score,
        params={"k_range": list(k_range), "silhouette_sample_size": silhouette_sample_size,
                "random_state": random_state, "n_init": n_init, "sweep_n_init": sweep_n_init,
                "sweep_sample_size": sweep_sample_size},
    )


def silhouette_markdown(silhouette: pd.DataFrame, chosen_k: int | None = None) -> str:
    """The silhouette table as Markdown (chosen k marked), for MetadataValue.md."""
    lines = ["| k | silhouette | inertia per store-month |", "| ---: | ---: | ---: |"]
    for row in silhouette.itertuples(index=False):
        mark = " **(chosen)**" if chosen_k is not None and row.k == chosen_k else ""
        lines.append(f"| {row.k}{mark} | {row.silhouette:.4f} | {row.inertia_per_row:.4f} |")
    return "\n".join(lines)


def write_segments(con: duckdb.DuckDBPyConnection, clusters: pd.DataFrame | SegmentResult,
                   centers: pd.DataFrame | None = None) -> dict[str, int]:
    """Replace ml.customer_sales_clusters and ml.customer_sales_cluster_centers in one transaction.

    Accepts a SegmentResult or the two frames. Checks first (columns, NULLs, one row per store-month
    and per cluster, every cluster of a store-month has a centre): a failed check or write leaves the
    previous tables as they were. Returns the row counts written.
    """
    if isinstance(clusters, SegmentResult):
        clusters, centers = clusters.clusters, clusters.centers
    if centers is None:
        raise SegmentsError("write_segments needs the cluster centres")
    orphans = set(clusters["cluster"].unique()) - set(centers["cluster"].unique())
    if orphans:
        raise SegmentsError(f"{ML_SCHEMA}.{CLUSTERS_TABLE}: clusters without a centre: {sorted(orphans)[:5]}")

    try:
        return replace_tables(con, {CLUSTERS_TABLE: clusters, CENTERS_TABLE: centers})
    except WriteBackError as exc:
        raise SegmentsError(str(exc)) from exc


def run_segments(con: duckdb.DuckDBPyConnection, n_clusters: int = DEFAULT_N_CLUSTERS, **kwargs) -> SegmentResult:
    """Load the store-months, cluster them and write both ml tables; returns the result."""
    result = compute_segments(load_store_months(con), n_clusters, **kwargs)
    write_segments(con, result)
    return result
