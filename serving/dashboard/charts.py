"""Altair charts of the dashboard (numbers with thousands separators, dates as day and month)."""

from __future__ import annotations

import altair as alt
import pandas as pd

ACTUAL, PAST, FUTURE = "actual", "past forecast (backtest)", "forecast"
COLOURS = alt.Scale(domain=[ACTUAL, PAST, FUTURE], range=["#1f77b4", "#f58518", "#e45756"])
DATE_AXIS = alt.Axis(format="%d %b %Y", labelAngle=0)


def _dated(df: pd.DataFrame, column: str = "date") -> pd.DataFrame:
    return df.assign(**{column: pd.to_datetime(df[column])})


def forecast_chart(actual: pd.DataFrame, backtest: pd.DataFrame, forecast: pd.DataFrame, model: str,
                   store_id: int, level: float | None) -> alt.LayerChart:
    """Actual history, the model's past (backtest) forecasts over it and its forecast after it, each forecast
    with its interval band."""
    fc = _dated(forecast.loc[forecast["model"] == model]).assign(series=FUTURE)
    bt = _dated(backtest.loc[backtest["model"] == model]).assign(series=PAST)
    act = _dated(actual).assign(series=ACTUAL)[["date", "sales", "series"]]
    preds = pd.concat([bt, fc], ignore_index=True)[["date", "series", "sales_pred", "sales_lower", "sales_upper"]]
    colour = alt.Color("series:N", title=None, scale=COLOURS, legend=alt.Legend(orient="top"))
    x = alt.X("date:T", title=None, axis=DATE_AXIS)
    tip = [alt.Tooltip("date:T", format="%a %d %b %Y"), "series:N",
           alt.Tooltip("sales_pred:Q", format=",.0f", title="forecast"),
           alt.Tooltip("sales_lower:Q", format=",.0f", title="lower"),
           alt.Tooltip("sales_upper:Q", format=",.0f", title="upper")]
    band = alt.Chart(preds).mark_area(opacity=0.2).encode(
        x=x, y=alt.Y("sales_lower:Q", title="sales per day", axis=alt.Axis(format=",.0f")), y2="sales_upper:Q",
        color=colour, tooltip=tip)
    pred = alt.Chart(preds).mark_line(strokeWidth=1.8).encode(x=x, y="sales_pred:Q", color=colour, tooltip=tip)
    hist = alt.Chart(act).mark_line(strokeWidth=1.4).encode(
        x=x, y="sales:Q", color=colour,
        tooltip=[alt.Tooltip("date:T", format="%a %d %b %Y"), alt.Tooltip("sales:Q", format=",.0f", title="actual")])
    layers = [band, hist, pred]
    if not fc.empty:
        layers.append(alt.Chart(pd.DataFrame({"date": [fc["date"].min()]})).mark_rule(
            strokeDash=[4, 4], color="grey").encode(x="date:T"))
    interval = f", {level:.0%} interval" if level else ""
    return alt.layer(*layers).properties(
        height=400, title=f"Store {store_id}: daily sales, actual vs {model} forecasts (past and future{interval})")


def _month_rows(df: pd.DataFrame, kind: str, value: str) -> pd.DataFrame:
    out = df.assign(kind=kind).rename(columns={value: "value"})
    out["month"] = pd.to_datetime(out["month_start"]).dt.strftime("%b %Y")
    out["coverage"] = [f"partial: {n} of {m} days" if p else "whole month"
                       for n, m, p in zip(out["n_days"], out["days_in_month"], out["is_partial"], strict=True)]
    return out[["month_start", "month", "kind", "value", "is_partial", "coverage"]]


def monthly_chart(monthly_actual: pd.DataFrame, monthly_forecast: pd.DataFrame, model: str) -> alt.LayerChart:
    """Monthly totals, actual and forecast side by side; a month with fewer days than the calendar's is drawn
    pale and hatched-outlined and labelled partial."""
    rows = pd.concat([_month_rows(monthly_actual.tail(12), ACTUAL, "sales"),
                      _month_rows(monthly_forecast.loc[monthly_forecast["model"] == model], FUTURE, "sales_pred")],
                     ignore_index=True).sort_values("month_start")
    rows["label"] = rows["month"] + rows["is_partial"].map({True: " (partial)", False: ""})
    order = list(dict.fromkeys(rows["label"]))
    base = alt.Chart(rows).encode(
        x=alt.X("label:O", title=None, sort=order, axis=alt.Axis(labelAngle=-40)),
        xOffset=alt.XOffset("kind:N", sort=[ACTUAL, FUTURE]),
        color=alt.Color("kind:N", title=None, scale=alt.Scale(domain=[ACTUAL, FUTURE],
                                                              range=["#1f77b4", "#e45756"]),
                        legend=alt.Legend(orient="top")),
        tooltip=["month", "kind", alt.Tooltip("value:Q", format=",.0f", title="sales"), "coverage"])
    bars = base.mark_bar().encode(
        y=alt.Y("value:Q", title="sales per month", axis=alt.Axis(format=",.0f")),
        opacity=alt.condition("datum.is_partial", alt.value(0.35), alt.value(1.0)),
        strokeDash=alt.condition("datum.is_partial", alt.value([3, 2]), alt.value([1, 0])),
        stroke=alt.value("#333"), strokeWidth=alt.condition("datum.is_partial", alt.value(1.2), alt.value(0)))
    text = base.transform_filter("datum.is_partial").mark_text(dy=-6, fontSize=10).encode(
        y="value:Q", text=alt.value("partial"))
    return (bars + text).properties(height=340)


def accuracy_chart(accuracy: pd.DataFrame, metric: str) -> alt.Chart:
    return alt.Chart(accuracy).mark_line(point=True).encode(
        x=alt.X("trained_at:T", title="trained at", axis=alt.Axis(format="%d %b %H:%M", labelAngle=0)),
        y=alt.Y(f"{metric}:Q", title=f"validation {metric}"),
        color=alt.Color("model:N"),
        tooltip=["model", alt.Tooltip("trained_at:T", format="%d %b %Y %H:%M"),
                 alt.Tooltip(f"{metric}:Q", format=",.3f")],
    ).properties(height=320, title=f"Validation {metric} per model version")


def chain_daily_chart(daily: pd.DataFrame) -> alt.LayerChart:
    df = _dated(daily)
    colour = alt.Color("series:N", title=None, scale=alt.Scale(domain=[ACTUAL, FUTURE], range=["#1f77b4", "#e45756"]),
                       legend=alt.Legend(orient="top"))
    x = alt.X("date:T", title=None, axis=DATE_AXIS)
    band = alt.Chart(df.dropna(subset=["sales_lower"])).mark_area(opacity=0.2, color="#e45756").encode(
        x=x, y=alt.Y("sales_lower:Q", title="chain sales per day", axis=alt.Axis(format=",.0f")), y2="sales_upper:Q")
    line = alt.Chart(df).mark_line().encode(
        x=x, y="sales:Q", color=colour,
        tooltip=[alt.Tooltip("date:T", format="%a %d %b %Y"), "series:N", alt.Tooltip("sales:Q", format=",.0f")])
    return (band + line).properties(height=300, title="All stores: daily sales, actual and champion forecast")


def store_bars(df: pd.DataFrame, value: str, title: str, fmt: str, rule: float | None = None) -> alt.LayerChart:
    """One horizontal bar per store (largest first), optionally with a reference line (the chain's figure)."""
    data = df.assign(store=df["store_id"].map(lambda s: f"store {s}"))
    bars = alt.Chart(data).mark_bar().encode(
        y=alt.Y("store:N", sort=None, title=None, axis=alt.Axis(labelOverlap=False)), x=alt.X(f"{value}:Q", title=title, axis=alt.Axis(format=fmt)),
        color=alt.condition(f"datum.{value} < 0", alt.value("#e45756"), alt.value("#4c78a8")),
        tooltip=["store", alt.Tooltip(f"{value}:Q", format=fmt, title=title)])
    layers = [bars]
    if rule is not None:
        layers.append(alt.Chart(pd.DataFrame({"x": [rule]})).mark_rule(color="black", strokeDash=[4, 3]).encode(
            x="x:Q", tooltip=[alt.Tooltip("x:Q", format=fmt, title="chain")]))
    return alt.layer(*layers).properties(height=max(160, 32 * len(data)))
