"""The insight tables (``marts.insight_*``) as charts, with rounded numbers and readable dates."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

# per table: the bars to draw (x category, y measure, optional colour) and rows kept; titles say what y is
SPECS: dict[str, dict] = {
    "insight_promo_effect": dict(x="label", y="sales_uplift_pct", color="grain",
                                 title="Sales uplift on promo days (%)"),
    "insight_promo_effect_by_store": dict(x="store", y="sales_uplift_pct", top=20,
                                          title="Sales uplift on promo days per store (%, top 20)"),
    "insight_promo_distribution": dict(x="day_of_week", y="promo_share_diff_pp", color="store_type",
                                       title="Promo share, plan minus history (percentage points), by weekday"),
    "insight_holiday_effect": dict(x="holiday_kind", y="sales_index", color="phase",
                                   title="Sales index around holidays (100 = normal)"),
    "insight_seasonality": dict(x="period_label", y="sales_index", facet="grain", order="period",
                                title="Sales index (100 = average)"),
    "insight_competition_effect": dict(x="distance_band", y="avg_sales_per_open_day", order="band_order",
                                       title="Average sales per open day by competitor distance"),
    "insight_competition_opening_by_store": dict(x="store", y="sales_change_pct", where="is_comparable",
                                                 title="Sales change after a competitor opened (%)"),
    "insight_sales_customers": dict(x="label", y="corr_sales_customers", color="grain",
                                    title="Correlation of daily sales and customers"),
    "insight_store_format": dict(x="label", y="avg_sales_per_open_day",
                                 title="Average sales per open day by store type / assortment"),
}
HIDDEN = {"band_order", "phase_order"}


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Readable copy: dates as dates, times to the minute, floats rounded (0 decimals from 100 up, else 2)."""
    out = frame.drop(columns=[c for c in frame.columns if c in HIDDEN])
    for col in out.columns:
        s = out[col]
        if pd.api.types.is_datetime64_any_dtype(s):
            has_time = (s.dropna().dt.normalize() != s.dropna()).any()
            out[col] = s.dt.strftime("%Y-%m-%d %H:%M") if has_time else s.dt.strftime("%Y-%m-%d")
        elif pd.api.types.is_float_dtype(s):
            big = s.abs().median() >= 100 if s.notna().any() else False
            out[col] = s.round(0).astype("Int64") if big else s.round(2)
    return out.rename(columns=lambda c: c.replace("_", " "))


def _label(frame: pd.DataFrame) -> pd.Series:
    """A row's category: the store, or its store type / assortment, or 'all stores'."""
    parts = []
    for col, prefix in (("store_id", "store "), ("store_type", "type "), ("assortment", "assortment ")):
        if col in frame.columns:
            parts.append(frame[col].map(lambda v, p=prefix: "" if pd.isna(v) or v == "all" else f"{p}{v}"))
    if not parts:
        return pd.Series("all stores", index=frame.index)
    joined = parts[0].astype(str)
    for p in parts[1:]:
        joined = joined.str.cat(p.astype(str), sep=" ")
    return joined.str.strip().replace("", "all stores")


def chart(table: str, frame: pd.DataFrame) -> alt.Chart | None:
    spec = SPECS.get(table)
    df = frame.copy()
    df["label"] = _label(df)
    if "store_id" in df.columns:
        df["store"] = df["store_id"].map(lambda v: f"store {v}")
    if spec is None or spec["y"] not in df.columns or spec["x"] not in df.columns:
        numeric = [c for c in frame.columns if pd.api.types.is_float_dtype(frame[c])]
        if not numeric:
            return None
        spec = dict(x="label", y=numeric[0], title=numeric[0].replace("_", " "))
    if spec.get("where") in df.columns:
        df = df.loc[df[spec["where"]].fillna(False).astype(bool)]
    df = df.dropna(subset=[spec["y"]])
    if "top" in spec:
        df = df.sort_values(spec["y"], ascending=False).head(spec["top"])
    sort = (list(dict.fromkeys(df.sort_values(spec["order"])[spec["x"]])) if spec.get("order") in df.columns
            else "-y" if "top" in spec or spec["x"] == "store" else None)
    y_fmt = ",.0f" if df[spec["y"]].abs().median() >= 100 else ",.2f"
    enc = dict(x=alt.X(f"{spec['x']}:N", title=None, sort=sort, axis=alt.Axis(labelAngle=-40, labelLimit=160)),
               y=alt.Y(f"{spec['y']}:Q", title=None, axis=alt.Axis(format=y_fmt)),
               tooltip=[alt.Tooltip(f"{spec['x']}:N", title=spec["x"].replace("_", " ")),
                        alt.Tooltip(f"{spec['y']}:Q", format=y_fmt, title=spec["y"].replace("_", " "))])
    if spec.get("color") in df.columns:
        enc["color"] = alt.Color(f"{spec['color']}:N", title=spec["color"].replace("_", " "),
                                 legend=alt.Legend(orient="top"))
        enc["xOffset"] = f"{spec['color']}:N"
    base = alt.Chart(df, title=spec["title"]).mark_bar().encode(**enc)
    if spec.get("facet") in df.columns:
        return base.properties(height=200, width=alt.Step(14)).facet(
            row=alt.Row(f"{spec['facet']}:N", title=None)).resolve_scale(x="independent")
    return base.properties(height=280)


def render(table: str, frame: pd.DataFrame) -> None:
    st.subheader(table.removeprefix("insight_").replace("_", " ").capitalize())
    drawn = chart(table, frame)
    if drawn is not None:
        st.altair_chart(drawn, width="stretch" if not isinstance(drawn, alt.FacetChart) else "content")
    with st.expander("Table"):
        st.dataframe(tidy(frame), hide_index=True, width="stretch")
