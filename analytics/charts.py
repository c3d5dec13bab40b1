"""Small PNG charts of the insight marts, the segments and the models, for Dagster asset metadata.

Every chart function returns PNG bytes; `to_markdown_image` inlines them as a base64 data URI for
`dagster.MetadataValue.md`. Dagster 1.13's UI renders Markdown metadata in place only under 1,000
characters, so a chart opens from "[Show Markdown]" (path and URL entries show as plain text, and the
webserver serves no files of ours). Legends sit outside the axes (`_legend`), never over the data.

Matplotlib's object-oriented API is used (no pyplot, no global backend switch): figures render on
the Agg canvas, so this works headless and from several threads.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable

import duckdb
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

DPI = 80
WIDE = (8.0, 3.6)
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


# --------------------------------------------------------------------------- helpers


def to_markdown_image(png: bytes, alt: str = "chart") -> str:
    """Markdown image with the PNG inlined as a base64 data URI (for MetadataValue.md)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def _figure(ncols: int = 1, size: tuple[float, float] = WIDE):
    # Constrained layout makes room for labels, twin axes and the legend outside the axes (see _legend).
    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _legend(fig: Figure) -> None:
    """One legend for the whole figure, right of the axes so it never covers data: the labelled artists of every
    axes (twin axes included), each label once."""
    entries = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(list(entries.values()), list(entries), loc="outside right upper", fontsize=8, frameon=False)


def _no_data(title: str) -> bytes:
    fig, (ax,) = _figure(size=(5.0, 1.6))
    ax.text(0.5, 0.5, f"{title}: no data yet", ha="center", va="center", fontsize=11)
    ax.set_axis_off()
    return _png(fig)


def _num(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").astype(float).to_numpy()


def _reference_line(ax, y: float = 100.0) -> None:
    ax.axhline(y, color="grey", linewidth=0.8, linestyle="--")


# --------------------------------------------------------------------------- insight charts


def chart_promo_distribution(df: pd.DataFrame) -> bytes:
    """Promo share per weekday, history vs plan (all store types pooled)."""
    title = "Promo share of store-days by weekday"
    if df.empty:
        return _no_data(title)
    g = df.groupby(["day_of_week", "day_name"], as_index=False)[
        ["history_store_days", "history_promo_days", "plan_store_days", "plan_promo_days"]].sum()
    g = g.sort_values("day_of_week")
    history = 100 * _num(g["history_promo_days"]) / np.where(_num(g["history_store_days"]) > 0,
                                                              _num(g["history_store_days"]), np.nan)
    plan = 100 * _num(g["plan_promo_days"]) / np.where(_num(g["plan_store_days"]) > 0,
                                                       _num(g["plan_store_days"]), np.nan)
    fig, (ax,) = _figure()
    x = np.arange(len(g))
    ax.bar(x - 0.2, history, 0.4, label="history", color=COLORS[0])
    ax.bar(x + 0.2, plan, 0.4, label="plan", color=COLORS[1])
    ax.set_xticks(x, g["day_name"].tolist())
    ax.set_ylabel("% of store-days with promo")
    ax.set_title(title)
    _legend(fig)
    return _png(fig)


def chart_promo_effect(df: pd.DataFrame) -> bytes:
    """Like-for-like and plain sales uplift per store type x assortment (and all stores)."""
    title = "Promo sales uplift (like-for-like vs plain)"
    rows = df[df["grain"].isin(["all", "store_type_assortment"])] if not df.empty else df
    if rows.empty:
        return _no_data(title)
    labels = ["all" if r.grain == "all" else f"{r.store_type}/{r.assortment}" for r in rows.itertuples()]
    fig, (ax,) = _figure()
    x = np.arange(len(rows))
    ax.bar(x - 0.2, _num(rows["like_for_like_sales_uplift_pct"]), 0.4, label="like-for-like", color=COLORS[0])
    ax.bar(x + 0.2, _num(rows["sales_uplift_pct"]), 0.4, label="plain", color=COLORS[7])
    ax.set_xticks(x, labels)
    ax.set_xlabel("store type / assortment")
    ax.set_ylabel("sales uplift on promo days, %")
    ax.set_title(title)
    _legend(fig)
    return _png(fig)


def chart_promo_effect_by_store(df: pd.DataFrame) -> bytes:
    """Distribution of the stores' like-for-like uplift, the top 10 listed."""
    title = "Promo uplift per store"
    values = _num(df["like_for_like_sales_uplift_pct"]) if not df.empty else np.array([])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return _no_data(title)
    fig, (ax, ax_top) = _figure(2)
    ax.hist(values, bins=min(40, max(5, values.size // 5)), color=COLORS[0])
    ax.set_xlabel("like-for-like sales uplift, %")
    ax.set_ylabel("stores")
    ax.set_title(title)
    top = df.dropna(subset=["like_for_like_sales_uplift_pct"]).nsmallest(10, "uplift_rank")
    ax_top.barh([f"store {s}" for s in top["store_id"]][::-1],
                _num(top["like_for_like_sales_uplift_pct"])[::-1], color=COLORS[2])
    ax_top.set_xlabel("uplift, %")
    ax_top.set_title("gain most")
    return _png(fig)


def chart_holiday_effect(df: pd.DataFrame) -> bytes:
    """Sales index (100 = normal day) before / during / after each holiday kind."""
    title = "Sales around holidays (open days, 100 = normal)"
    if df.empty:
        return _no_data(title)
    kinds = [k for k in ["public_holiday", "easter", "christmas", "school_holiday"]
             if k in set(df["holiday_kind"])]
    phases = ["before", "during", "after"]
    fig, (ax,) = _figure()
    x = np.arange(len(kinds))
    for i, phase in enumerate(phases):
        values = [df.loc[(df["holiday_kind"] == k) & (df["phase"] == phase), "sales_index"] for k in kinds]
        values = [float(v.iloc[0]) if len(v) and pd.notna(v.iloc[0]) else np.nan for v in values]
        ax.bar(x + (i - 1) * 0.27, values, 0.27, label=phase, color=COLORS[i])
    _reference_line(ax)
    ax.set_xticks(x, [k.replace("_", " ") for k in kinds])
    ax.set_ylabel("sales index")
    ax.set_title(title)
    _legend(fig)
    return _png(fig)


def chart_seasonality(df: pd.DataFrame) -> bytes:
    """Sales and customers index by month, week of year and weekday."""
    title = "Seasonality"
    if df.empty:
        return _no_data(title)
    fig, axes = _figure(3, size=(11.0, 3.4))
    for ax, grain in zip(axes, ["month", "week_of_year", "day_of_week"]):
        g = df[df["grain"] == grain].sort_values("period")
        ax.plot(_num(g["period"]), _num(g["sales_index"]), marker="o", markersize=3, label="sales",
                color=COLORS[0])
        ax.plot(_num(g["period"]), _num(g["customers_index"]), marker="o", markersize=3, label="customers",
                color=COLORS[1])
        _reference_line(ax)
        if grain == "month":
            ax.set_xticks(_num(g["period"]), [label[0] for label in g["period_label"]], fontsize=8)
        elif grain == "day_of_week":
            ax.set_xticks(_num(g["period"]), g["period_label"].tolist(), fontsize=8)
        ax.set_title(f"{title}: {grain.replace('_', ' ')}")
    axes[0].set_ylabel("index (100 = average)")
    _legend(fig)
    return _png(fig)


def chart_competition_effect(df: pd.DataFrame) -> bytes:
    """Mean open-day sales per distance band and the sales change after a competitor opened."""
    title = "Competition distance"
    bands = df[df["band_order"] > 0].sort_values("band_order") if not df.empty else df
    if bands.empty:
        return _no_data(title)
    fig, (ax, ax_change) = _figure(2, size=(10.0, 3.6))
    labels = bands["distance_band"].tolist()
    ax.bar(labels, _num(bands["avg_sales_per_open_day"]), color=COLORS[0])
    ax.set_ylabel("mean sales per open day")
    ax.set_title(f"{title}: store sales by band")
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    change = _num(bands["avg_relative_sales_change_pct_after_opening"])
    ax_change.bar(labels, change, color=[COLORS[3] if v < 0 else COLORS[2] for v in np.nan_to_num(change)])
    ax_change.axhline(0, color="grey", linewidth=0.8)
    ax_change.set_ylabel("% change vs chain level")
    ax_change.set_title("after a competitor opened")
    ax_change.tick_params(axis="x", labelrotation=45, labelsize=8)
    return _png(fig)


def chart_competition_opening_by_store(df: pd.DataFrame) -> bytes:
    """Per store: distance to the new competitor vs the relative sales change."""
    title = "Sales change after a competitor opened"
    rows = df[df["is_comparable"].astype(bool)] if not df.empty else df
    rows = rows.dropna(subset=["competition_distance_m", "relative_sales_change_pct"]) if not rows.empty else rows
    if rows.empty:
        return _no_data(title)
    fig, (ax,) = _figure(size=(6.0, 3.6))
    ax.scatter(_num(rows["competition_distance_m"]), _num(rows["relative_sales_change_pct"]), s=12,
               alpha=0.7, color=COLORS[0])
    ax.set_xscale("log")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("distance to competitor, m (log)")
    ax.set_ylabel("% change vs chain level")
    ax.set_title(title)
    return _png(fig)


def chart_sales_customers(df: pd.DataFrame) -> bytes:
    """Per-store correlation of sales and customers, and sales per customer percentiles by type."""
    title = "Sales vs customers"
    if df.empty:
        return _no_data(title)
    fig, (ax, ax_spc) = _figure(2, size=(10.0, 3.6))
    stores = _num(df.loc[df["grain"] == "store", "corr_sales_customers"])
    stores = stores[np.isfinite(stores)]
    if stores.size:
        ax.hist(stores, bins=min(40, max(5, stores.size // 5)), color=COLORS[0])
    overall = df.loc[df["grain"] == "all", "corr_sales_customers"]
    xlabel = "correlation of daily sales and customers"
    if len(overall) and pd.notna(overall.iloc[0]):  # named in the axis label: a legend would sit by the other panel
        ax.axvline(float(overall.iloc[0]), color=COLORS[3])
        xlabel += f"\n(red line: all stores pooled, {float(overall.iloc[0]):.3f})"
    ax.set_xlabel(xlabel)
    ax.set_ylabel("stores")
    ax.set_title(f"{title}: per store")
    groups = df[df["grain"].isin(["all", "store_type"])]
    x = np.arange(len(groups))
    p05, p25, p50, p75, p95 = (_num(groups[f"sales_per_customer_p{q}"]) for q in ("05", "25", "50", "75", "95"))
    ax_spc.vlines(x, p05, p95, color=COLORS[7], linewidth=1)
    ax_spc.bar(x, p75 - p25, 0.5, bottom=p25, color=COLORS[1], alpha=0.8)
    ax_spc.scatter(x, p50, color="black", zorder=3, s=12)
    ax_spc.set_xticks(x, groups["store_type"].tolist())
    ax_spc.set_xlabel("store type")
    ax_spc.set_ylabel("sales per customer (p5/p25/p50/p75/p95)")
    ax_spc.set_title("basket size")
    return _png(fig)


def chart_store_format(df: pd.DataFrame) -> bytes:
    """Mean open-day sales and open days per week per store format."""
    title = "Store formats"
    if df.empty:
        return _no_data(title)
    labels = [f"{r.store_type}/{r.assortment}\n({r.n_stores})" for r in df.itertuples()]
    fig, (ax, ax_days) = _figure(2, size=(10.0, 3.6))
    ax.bar(labels, _num(df["avg_sales_per_open_day"]), color=COLORS[0])
    ax.set_ylabel("mean sales per open day")
    ax.set_title(f"{title}: type/assortment (stores)")
    ax.tick_params(axis="x", labelsize=8)
    open_days = _num(df["avg_open_days_per_week"])
    ax_days.bar(labels, open_days, color=COLORS[2])
    for i, (days, n_sunday) in enumerate(zip(open_days, df["n_sunday_openers"])):
        if np.isfinite(days) and n_sunday:
            ax_days.annotate(f"{int(n_sunday)} Sun", (i, days), ha="center", fontsize=7, xytext=(0, 2),
                             textcoords="offset points")
    ax_days.set_ylim(0, 7.8)
    ax_days.set_ylabel("open days per week")
    ax_days.set_title("open days per week (Sunday openers)")
    ax_days.tick_params(axis="x", labelsize=8)
    return _png(fig)


INSIGHT_CHARTS: dict[str, Callable[[pd.DataFrame], bytes]] = {
    "insight_promo_distribution": chart_promo_distribution,
    "insight_promo_effect": chart_promo_effect,
    "insight_promo_effect_by_store": chart_promo_effect_by_store,
    "insight_holiday_effect": chart_holiday_effect,
    "insight_seasonality": chart_seasonality,
    "insight_competition_effect": chart_competition_effect,
    "insight_competition_opening_by_store": chart_competition_opening_by_store,
    "insight_sales_customers": chart_sales_customers,
    "insight_store_format": chart_store_format,
}


def insight_chart_png(model: str, frame: pd.DataFrame) -> bytes:
    """PNG of the chart for insight model `model` drawn from its table `frame`."""
    try:
        chart = INSIGHT_CHARTS[model]
    except KeyError:
        raise KeyError(f"no chart for {model!r}; charts exist for {sorted(INSIGHT_CHARTS)}") from None
    return chart(frame)


def insight_chart_markdown(con: duckdb.DuckDBPyConnection, model: str, schema: str = "marts") -> str | None:
    """Markdown image of `model`'s chart read from `<schema>.<model>`; None when the model has no chart."""
    if model not in INSIGHT_CHARTS:
        return None
    frame = con.execute(f'select * from "{schema}"."{model}"').df()
    return to_markdown_image(insight_chart_png(model, frame), alt=model)


def insight_charts_markdown(con: duckdb.DuckDBPyConnection, models=None, schema: str = "marts") -> dict[str, str]:
    """{model: markdown image} for the given (default: all) insight models whose tables exist."""
    existing = set(con.execute(
        "select table_name from information_schema.tables where table_schema = ?", [schema]).df()["table_name"])
    wanted = INSIGHT_CHARTS if models is None else [m for m in models if m in INSIGHT_CHARTS]
    return {m: insight_chart_markdown(con, m, schema) for m in wanted if m in existing}


# --------------------------------------------------------------------------- segments


def chart_silhouette(silhouette: pd.DataFrame, chosen_k: int | None = None) -> bytes:
    """Silhouette score by k (the chosen k marked) with the inertia-per-row elbow curve."""
    title = "Silhouette by number of clusters"
    if silhouette.empty:
        return _no_data(title)
    s = silhouette.sort_values("k")
    fig, (ax,) = _figure(size=(6.5, 3.4))
    ax.plot(_num(s["k"]), _num(s["silhouette"]), marker="o", markersize=3, color=COLORS[0], label="silhouette")
    if chosen_k is not None and (s["k"] == chosen_k).any():
        chosen = float(s.loc[s["k"] == chosen_k, "silhouette"].iloc[0])
        ax.scatter([chosen_k], [chosen], s=60, color=COLORS[3], zorder=3, label=f"chosen k={chosen_k}")
    ax.set_xlabel("k")
    ax.set_ylabel("silhouette")
    ax.set_title(title)
    if "inertia_per_row" in s:
        ax2 = ax.twinx()
        ax2.plot(_num(s["k"]), _num(s["inertia_per_row"]), color=COLORS[7], linewidth=0.8, linestyle=":",
                 label="inertia / store-month")
        ax2.set_ylabel("inertia per store-month", color=COLORS[7])
    _legend(fig)
    return _png(fig)


def chart_segments(clusters: pd.DataFrame, centers: pd.DataFrame) -> bytes:
    """Store-months by monthly customers and sales, coloured by cluster, centres marked."""
    title = "Customer-sales segments (store-months)"
    if clusters.empty:
        return _no_data(title)
    fig, (ax,) = _figure(size=(6.5, 4.2))
    sample = clusters.sample(min(len(clusters), 8000), random_state=0)
    ax.scatter(_num(sample["customers"]), _num(sample["sales"]), c=_num(sample["cluster"]), cmap="tab20",
               s=3, alpha=0.5)
    ax.scatter(_num(centers["customers"]), _num(centers["sales"]), marker="x", color="black", s=30)
    for r in centers.itertuples():
        ax.annotate(str(r.cluster), (r.customers, r.sales), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("customers per month")
    ax.set_ylabel("sales per month")
    ax.set_title(title)
    return _png(fig)


def segments_markdown(result) -> str:
    """Markdown with the silhouette curve and the cluster scatter of a segments.SegmentResult."""
    return "\n\n".join([
        to_markdown_image(chart_silhouette(result.silhouette, result.n_clusters), alt="silhouette by k"),
        to_markdown_image(chart_segments(result.clusters, result.centers), alt="customer-sales segments"),
    ])


# --------------------------------------------------------------------------- models


def importance_chart_markdown(importance: pd.DataFrame, title: str, top: int = 15) -> str:
    """Horizontal bars of the ``top`` permutation importances (RMSPE increase when shuffled)."""
    d = importance.head(top).iloc[::-1]
    fig, (ax,) = _figure(size=(6.0, 0.3 * len(d) + 1))
    ax.barh(d["feature"], d["importance"], color=COLORS[0])
    ax.set_xlabel("RMSPE increase when shuffled (validation fold)")
    ax.set_title(title)
    return to_markdown_image(_png(fig), title)


def forecast_vs_actual_markdown(validation: pd.DataFrame, title: str, level: float, n_stores: int = 3) -> str:
    """Validation-fold forecast, its interval and the actuals for the first ``n_stores`` stores."""
    stores = sorted(validation["store_id"].unique())[:n_stores]
    fig = Figure(figsize=(7.0, 2.2 * max(len(stores), 1)), layout="constrained")
    axes = fig.subplots(max(len(stores), 1), 1, sharex=True, squeeze=False)[:, 0]
    for ax, store in zip(axes, stores):
        d = validation.loc[validation["store_id"] == store].sort_values("sale_date")
        ax.fill_between(d["sale_date"], d["sales_lower"], d["sales_upper"], color=COLORS[0], alpha=0.2,
                        label=f"{level:.0%} interval")
        ax.plot(d["sale_date"], d["sales_pred"], color=COLORS[0], label="forecast")
        ax.plot(d["sale_date"], d["sales"], color="black", lw=0.8, marker=".", label="actual")
        ax.set_ylabel(f"store {store}")
    _legend(fig)
    axes[0].set_title(title)
    fig.autofmt_xdate()
    return to_markdown_image(_png(fig), title)
