"""The LSTM's data layout: every store on one continuous daily grid of channels, and the windows cut from it.

Days without a row (refurbishment gaps, before a store's first day) are zeros with ``observed = 0``, so gaps
never shift the calendar.  Sales and customers are scaled per store with the training rows' log mean and std.
Windows are cut with ``numpy.lib.stride_tricks.sliding_window_view`` (no Python loops over rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

STORE_TYPES = ["a", "b", "c", "d"]
ASSORTMENTS = ["a", "b", "c"]
# channel layout
CH_SALES, CH_CUST, CH_FUTURE, CH_OBSERVED = 0, 1, 2, 3
# Event and calendar columns of the mart (capped in dbt): channel = min(value, cap) / cap; a frame without the
# column gets the cap (no event near).  Boolean ones are 0/1 (absent: 0).
EVENT_COVARIATE_CAPS = {
    "days_since_closed": 14, "days_until_closed": 14, "days_since_state_holiday": 14, "days_until_state_holiday": 14,
    "promo_run_day": 5, "days_since_promo": 14, "days_until_promo": 14,
    "days_until_christmas": 30, "days_since_christmas": 30, "days_until_easter": 30, "days_since_easter": 30,
    "school_holiday_run_day": 42, "days_since_reopening": 30, "days_until_long_closure": 30,
}
FLAG_COVARIATES = ["is_open", "is_promo", "is_state_holiday", "is_school_holiday", "is_promo2_month",
                   "school_holiday_last_week", "school_holiday_next_week", "is_after_refurbishment"]
CALENDAR_NAMES = [f"dow_{d}" for d in range(1, 8)] + ["dom_sin", "dom_cos", "doy_sin", "doy_cos"]
COVARIATE_NAMES = FLAG_COVARIATES + CALENDAR_NAMES + list(EVENT_COVARIATE_CAPS)
STATIC_NAMES = [f"store_type_{t}" for t in STORE_TYPES] + [f"assortment_{a}" for a in ASSORTMENTS] + ["store_level"]
CHANNELS = ["sales_scaled", "customers_scaled", "is_future", "observed"] + COVARIATE_NAMES + STATIC_NAMES
N_CHANNELS = len(CHANNELS)
_COV0 = 4
_STAT0 = _COV0 + len(COVARIATE_NAMES)


@dataclass
class StoreScaler:
    """Per-store mean/std of log1p(sales) and log1p(customers) on training open days with sales > 0."""

    table: pd.DataFrame  # index store_id; columns s_mu, s_sd, c_mu, c_sd, level, static channels
    default: dict = field(default_factory=dict)

    @classmethod
    def from_history(cls, hist: pd.DataFrame, min_sd: float = 0.05) -> "StoreScaler":
        d = hist.loc[hist["is_open"].astype(bool) & (hist["sales"] > 0)]
        ls = np.log1p(d["sales"].to_numpy(float))
        lc = np.log1p(d["customers"].fillna(0).to_numpy(float))
        g = pd.DataFrame({"store_id": d["store_id"].to_numpy(), "ls": ls, "lc": lc}).groupby("store_id")
        t = pd.DataFrame({"s_mu": g["ls"].mean(), "s_sd": g["ls"].std(ddof=0).fillna(0).clip(lower=min_sd),
                          "c_mu": g["lc"].mean(), "c_sd": g["lc"].std(ddof=0).fillna(0).clip(lower=min_sd)})
        lvl_mu, lvl_sd = float(t["s_mu"].mean()), float(t["s_mu"].std(ddof=0) or 1.0)
        t["level"] = (t["s_mu"] - lvl_mu) / (lvl_sd if lvl_sd > 0 else 1.0)
        first = hist.drop_duplicates("store_id").set_index("store_id")
        static = _static_channels(first).reindex(t.index).fillna(0.0)
        static["store_level"] = t["level"]
        t = pd.concat([t, static], axis=1)
        default = {c: float(t[c].median()) for c in ["s_mu", "s_sd", "c_mu", "c_sd", "level"]}
        return cls(table=t, default=default)

    def lookup(self, store_ids: np.ndarray) -> pd.DataFrame:
        t = self.table.reindex(pd.Index(store_ids))
        for c, v in self.default.items():
            t[c] = t[c].fillna(v)
        t["store_level"] = t["store_level"].fillna(self.default["level"])
        return t.fillna(0.0)


def _static_channels(by_store: pd.DataFrame) -> pd.DataFrame:
    st = by_store["store_type"].astype(str) if "store_type" in by_store.columns else pd.Series("", index=by_store.index)
    asr = by_store["assortment"].astype(str) if "assortment" in by_store.columns else pd.Series("", index=by_store.index)
    out = {f"store_type_{t}": (st == t).astype("float32") for t in STORE_TYPES}
    out.update({f"assortment_{a}": (asr == a).astype("float32") for a in ASSORTMENTS})
    return pd.DataFrame(out, index=by_store.index)


def _col(df: pd.DataFrame, name: str, default: float = 0.0) -> np.ndarray:
    if name not in df.columns:
        return np.full(len(df), default, dtype="float32")
    s = df[name]
    if s.dtype == bool or str(s.dtype) == "boolean":
        return s.astype("boolean").fillna(name == "is_open").to_numpy(dtype="float32")
    return pd.to_numeric(s).astype("float64").fillna(default).to_numpy(dtype="float32")


def calendar_channels(df: pd.DataFrame) -> np.ndarray:
    """The CALENDAR_NAMES channels from the mart's calendar columns, [n, 11]: a one-hot of ``day_of_week`` (ISO
    1..7) and the phases of ``day_of_month`` in its month and of ``day_of_year`` in the year as sin/cos.  The
    phases start at 0 on the first day (the trained networks' encoding; dbt's ``day_of_year_sin/cos`` for the
    tabular models are one day later).  The month length, which the mart lacks, comes from ``sale_date``."""
    missing = [c for c in ("day_of_week", "day_of_month", "day_of_year") if c not in df.columns]
    if missing:
        raise ValueError(f"lstm: feature frame lacks the mart's calendar column(s) {missing}")

    def num(col: str) -> np.ndarray:
        return pd.to_numeric(df[col]).to_numpy(dtype="float64")

    out = np.zeros((len(df), len(CALENDAR_NAMES)), dtype="float32")
    out[np.arange(len(df)), num("day_of_week").astype("int64") - 1] = 1.0
    dom_phase = 2 * np.pi * (num("day_of_month") - 1) / pd.to_datetime(df["sale_date"]).dt.days_in_month.to_numpy()
    doy_phase = 2 * np.pi * (num("day_of_year") - 1) / 365.25
    out[:, 7], out[:, 8] = np.sin(dom_phase), np.cos(dom_phase)
    out[:, 9], out[:, 10] = np.sin(doy_phase), np.cos(doy_phase)
    return out


def covariate_channels(df: pd.DataFrame) -> np.ndarray:
    """Known covariate channels for rows (vectorised), shape [n, len(COVARIATE_NAMES)]."""
    flags = [_col(df, c, 1.0 if c == "is_open" else 0.0) for c in FLAG_COVARIATES]
    events = [np.clip(_col(df, c, float(cap)), 0, cap) / cap for c, cap in EVENT_COVARIATE_CAPS.items()]
    return np.concatenate([np.stack(flags, axis=1), calendar_channels(df), np.stack(events, axis=1)], axis=1, dtype="float32")


@dataclass
class Grid:
    """Dense [stores, days, channels] array plus targets/weights (float32)."""

    stores: np.ndarray
    start: pd.Timestamp
    x: np.ndarray  # [S, T, C]
    y: np.ndarray  # [S, T, 3]: scaled sales, scaled customers, weight


def _fill_rows(grid: Grid, rows: pd.DataFrame, scaler: StoreScaler, future: bool) -> None:
    if rows.empty:
        return
    s_idx = np.searchsorted(grid.stores, rows["store_id"].to_numpy())
    t_idx = ((pd.to_datetime(rows["sale_date"]) - grid.start).dt.days).to_numpy()
    ok = (s_idx < len(grid.stores)) & (t_idx >= 0) & (t_idx < grid.x.shape[1])
    ok &= grid.stores[np.minimum(s_idx, len(grid.stores) - 1)] == rows["store_id"].to_numpy()
    rows, s_idx, t_idx = rows.loc[ok], s_idx[ok], t_idx[ok]
    grid.x[s_idx, t_idx, _COV0:_STAT0] = covariate_channels(rows)
    grid.x[s_idx, t_idx, CH_OBSERVED] = 1.0
    if future:
        return
    sc = scaler.lookup(rows["store_id"].to_numpy())
    sales = rows["sales"].to_numpy(float)
    cust = rows["customers"].fillna(0).to_numpy(float)
    good = rows["is_open"].astype(bool).to_numpy() & (sales > 0)
    ss = np.where(good, (np.log1p(np.where(good, sales, 0)) - sc["s_mu"].to_numpy()) / sc["s_sd"].to_numpy(), 0.0)
    cs = np.where(good, (np.log1p(np.where(good, cust, 0)) - sc["c_mu"].to_numpy()) / sc["c_sd"].to_numpy(), 0.0)
    grid.x[s_idx, t_idx, CH_SALES], grid.x[s_idx, t_idx, CH_CUST] = ss, cs
    grid.y[s_idx, t_idx] = np.stack([ss, cs, good], axis=1)


def build_grid(stores: np.ndarray, start: pd.Timestamp, n_days: int, scaler: StoreScaler,
               history: pd.DataFrame | None, future_rows: pd.DataFrame | None = None,
               future_from: pd.Timestamp | None = None) -> Grid:
    """Dense grid; history rows before ``future_from`` carry actuals, ``future_rows`` only covariates."""
    stores = np.sort(np.asarray(stores))
    grid = Grid(stores=stores, start=pd.Timestamp(start), x=np.zeros((len(stores), n_days, N_CHANNELS), "float32"),
                y=np.zeros((len(stores), n_days, 3), "float32"))
    if history is not None and len(history):
        h = history if future_from is None else history.loc[pd.to_datetime(history["sale_date"]) < future_from]
        _fill_rows(grid, h, scaler, future=False)
    if future_rows is not None and len(future_rows):
        _fill_rows(grid, future_rows, scaler, future=True)
    if future_from is not None:
        f0 = (pd.Timestamp(future_from) - grid.start).days
        grid.x[:, f0:, CH_FUTURE] = 1.0
        grid.x[:, f0:, CH_SALES:CH_CUST + 1] = 0.0
    grid.x[:, :, _STAT0:] = scaler.lookup(stores)[STATIC_NAMES].to_numpy(dtype="float32")[:, None, :]
    return grid


def cut_windows(grid: Grid, s_idx: np.ndarray, a_idx: np.ndarray, window: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Materialise windows (store s, start a) of length ``window``; the last ``horizon`` steps are masked."""
    xv = sliding_window_view(grid.x, window, axis=1)  # [S, T-W+1, C, W] (a view)
    yv = sliding_window_view(grid.y, window, axis=1)
    x = np.ascontiguousarray(xv[s_idx, a_idx].transpose(0, 2, 1))
    y = np.ascontiguousarray(yv[s_idx, a_idx].transpose(0, 2, 1))
    lb = window - horizon
    x[:, lb:, CH_SALES:CH_CUST + 1] = 0.0
    x[:, lb:, CH_FUTURE] = 1.0
    y[:, :lb, 2] = 0.0  # loss only on horizon steps
    return x, y


def window_positions(grid: Grid, window: int, horizon: int, max_end: int, min_obs: float) -> tuple[np.ndarray, np.ndarray]:
    """All (store, start) window positions whose end <= max_end with a horizon target and enough lookback."""
    lb = window - horizon
    S, T, _ = grid.x.shape
    n_pos = T - window + 1
    if n_pos <= 0:
        return np.zeros(0, int), np.zeros(0, int)
    w_cum = np.concatenate([np.zeros((S, 1)), np.cumsum(grid.y[:, :, 2], axis=1)], axis=1)
    o_cum = np.concatenate([np.zeros((S, 1)), np.cumsum(grid.x[:, :, CH_OBSERVED], axis=1)], axis=1)
    a = np.arange(n_pos)
    hz_w = w_cum[:, a + window] - w_cum[:, a + lb]
    lb_obs = (o_cum[:, a + lb] - o_cum[:, a]) / max(lb, 1)
    return np.nonzero((hz_w > 0) & (lb_obs >= min_obs) & ((a + window - 1) <= max_end)[None, :])
