"""The LSTM's data layout: every store on one continuous daily grid of channels, and the windows cut from it.

Days without a row (refurbishment gaps, before a store's first day) are zeros with ``observed = 0``, so gaps
never shift the calendar.  Sales and customers are scaled per store with the training rows' log mean and std;
with ``target_level = "store_dow"`` the sales channel (input and target) is the log deviation from the store's
weekday level instead.  Windows are cut with ``numpy.lib.stride_tricks.sliding_window_view`` (no Python loops
over rows).

Covariate channels (:class:`ChannelLayout`): every mart column the tree models see
(:func:`forecasting.features.design_columns`, so a column dbt adds reaches both without a list to update), one
rule per kind, fixed at fit time from the training rows and saved with the model:

- numeric and boolean columns: ``clip((x - lo) / (hi - lo), 0, 1)`` with ``lo`` the training minimum and ``hi``
  its 99.9th percentile (the maximum where that equals ``lo``); NULL is 0, plus a ``<col>_missing`` 0/1 channel
  for each column that has NULLs in the training rows;
- categorical columns: one-hot of the training levels -- per day, or as static store channels (repeated along
  time, also over gaps) when every store has one level (store type, assortment, state group);
- the calendar as sin/cos phases and a weekday one-hot (:func:`calendar_channels`).

The store statistics and recent-sales columns of the tree models are not channels: the network reads the
store's own scaled history in its lookback instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from forecasting.features import (
    RECENT_SALES_FEATURES,
    STORE_STAT_FEATURES,
    design_columns,
    numeric_matrix_column,
)

# channel layout: these four, then ChannelLayout.covariate_names, then ChannelLayout.static_names
CH_SALES, CH_CUST, CH_FUTURE, CH_OBSERVED = 0, 1, 2, 3
BASE_CHANNELS = ["sales_scaled", "customers_scaled", "is_future", "observed"]
_COV0 = len(BASE_CHANNELS)
CALENDAR_NAMES = [f"dow_{d}" for d in range(1, 8)] + ["dom_sin", "dom_cos", "doy_sin", "doy_cos"]
# y channels: scaled sales, scaled customers, loss weight, the sales level offset (added back to forecast), the
# store's sales scale (log units per scaled unit: the loss turns scaled errors into percentage errors with it)
Y_SALES, Y_CUST, Y_WEIGHT, Y_OFFSET, Y_SCALE = 0, 1, 2, 3, 4
# a row column the caller may add: log sales known before the forecast (the carnival memory), added to the row's
# sales offset on top of the store's weekday level
EXTRA_SALES_OFFSET = "extra_log_sales_offset"
N_Y = 5
TARGET_LEVELS = ("store", "store_dow")
_ROW_CHUNK = 262_144  # rows per covariate block when filling the grid (bounds the temporary [rows, channels] array)
_MIN_DOW_DAYS = 8  # fewer open days of a weekday: that weekday keeps the store's level (offset 0)


def _labels(s: pd.Series) -> np.ndarray:
    """Category labels as text; integer codes read the same whatever their dtype (5, 5.0 -> '5'); NULL -> 'missing'."""
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        v = pd.to_numeric(s).astype("float64").to_numpy()
        return np.where(np.isnan(v), "missing", np.nan_to_num(v).astype("int64").astype(str))
    return s.astype(object).where(s.notna(), "missing").astype(str).to_numpy()


@dataclass(frozen=True)
class ChannelLayout:
    """The network's covariate channels and their scaling, fixed by :meth:`from_history` on the training rows."""

    scaled: dict[str, tuple[float, float]]  # numeric / boolean column -> (lo, hi)
    with_missing: tuple[str, ...]  # scaled columns with NULLs in training: one 0/1 channel each
    one_hot: dict[str, tuple[str, ...]]  # per-day categorical column -> levels
    static_one_hot: dict[str, tuple[str, ...]]  # store-constant categorical column -> levels

    @classmethod
    def from_history(cls, hist: pd.DataFrame, top_quantile: float = 0.999) -> "ChannelLayout":
        numeric, categorical = design_columns(hist)
        own = set(STORE_STAT_FEATURES) | set(RECENT_SALES_FEATURES)  # the lookback's sales stand in for these
        numeric = ["is_open"] + [c for c in numeric if c in hist.columns and c not in own and c != "is_open"]
        scaled, with_missing = {}, []
        for col in numeric:
            v = numeric_matrix_column(hist[col])
            finite = v[~np.isnan(v)]
            lo = float(finite.min()) if len(finite) else 0.0
            hi = float(np.quantile(finite, top_quantile)) if len(finite) else 1.0
            if hi <= lo:
                hi = float(finite.max()) if len(finite) else lo + 1.0
            scaled[col] = (lo, hi if hi > lo else lo + 1.0)
            if len(finite) < len(v):
                with_missing.append(col)
        one_hot, static = {}, {}
        stores = hist["store_id"].to_numpy()
        for col in categorical:
            labels = pd.Series(_labels(hist[col]))
            levels = tuple(sorted(labels.unique()))
            per_store = labels.groupby(stores).nunique().max()
            (static if per_store <= 1 else one_hot)[col] = levels
        return cls(scaled=scaled, with_missing=tuple(with_missing), one_hot=one_hot, static_one_hot=static)

    @property
    def covariate_names(self) -> list[str]:
        return (list(self.scaled) + [f"{c}_missing" for c in self.with_missing]
                + [f"{c}_{lv}" for c, lvs in self.one_hot.items() for lv in lvs] + CALENDAR_NAMES)

    @property
    def static_names(self) -> list[str]:
        return [f"{c}_{lv}" for c, lvs in self.static_one_hot.items() for lv in lvs] + ["store_level"]

    @property
    def channels(self) -> list[str]:
        return BASE_CHANNELS + self.covariate_names + self.static_names

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    def _require(self, df: pd.DataFrame, columns) -> None:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise ValueError(f"lstm: feature frame lacks the mart column(s) {missing} the network was fitted with")

    def covariates(self, df: pd.DataFrame) -> np.ndarray:
        """The per-day covariate channels of ``df``'s rows, [n, len(covariate_names)] (a loop over columns only)."""
        self._require(df, [*self.scaled, *self.one_hot])
        out = np.zeros((len(df), len(self.covariate_names)), dtype="float32")
        j = 0
        nulls = {}
        for col, (lo, hi) in self.scaled.items():
            v = numeric_matrix_column(df[col])
            nulls[col] = np.isnan(v)
            out[:, j] = np.nan_to_num(np.clip((v - lo) / (hi - lo), 0.0, 1.0))
            j += 1
        for col in self.with_missing:
            out[:, j] = nulls[col]
            j += 1
        for col, levels in self.one_hot.items():
            labels = _labels(df[col])
            for level in levels:
                out[:, j] = labels == level
                j += 1
        out[:, j:] = calendar_channels(df)
        return out

    def static_channels(self, by_store: pd.DataFrame) -> pd.DataFrame:
        """One-hot static channels of stores (``by_store``: a row per store, indexed by store_id), no store_level."""
        self._require(by_store, self.static_one_hot)
        out = {}
        for col, levels in self.static_one_hot.items():
            labels = _labels(by_store[col])
            out.update({f"{col}_{lv}": (labels == lv).astype("float32") for lv in levels})
        return pd.DataFrame(out, index=by_store.index)


@dataclass
class StoreScaler:
    """Per-store mean/std of log1p(sales) and log1p(customers) on training open days with sales > 0, the static
    channels, and (``target_level = "store_dow"``) each store's weekday offsets of log sales from its mean."""

    table: pd.DataFrame  # index store_id; columns s_mu, s_sd, c_mu, c_sd, level, static channels
    default: dict = field(default_factory=dict)
    dow_offset: pd.DataFrame | None = None  # index store_id, columns day_of_week 1..7; None: level = store mean

    @classmethod
    def from_history(cls, hist: pd.DataFrame, layout: ChannelLayout, target_level: str = "store",
                     min_sd: float = 0.05) -> "StoreScaler":
        if target_level not in TARGET_LEVELS:
            raise ValueError(f"lstm: target_level {target_level!r} is not one of {TARGET_LEVELS}")
        d = hist.loc[hist["is_open"].astype(bool) & (hist["sales"] > 0)]
        ls = np.log1p(d["sales"].to_numpy(float))
        lc = np.log1p(d["customers"].fillna(0).to_numpy(float))
        g = pd.DataFrame({"store_id": d["store_id"].to_numpy(), "ls": ls, "lc": lc}).groupby("store_id")
        t = pd.DataFrame({"s_mu": g["ls"].mean(), "s_sd": g["ls"].std(ddof=0).fillna(0).clip(lower=min_sd),
                          "c_mu": g["lc"].mean(), "c_sd": g["lc"].std(ddof=0).fillna(0).clip(lower=min_sd)})
        lvl_mu, lvl_sd = float(t["s_mu"].mean()), float(t["s_mu"].std(ddof=0) or 1.0)
        t["level"] = (t["s_mu"] - lvl_mu) / (lvl_sd if lvl_sd > 0 else 1.0)
        first = hist.drop_duplicates("store_id").set_index("store_id")
        static = layout.static_channels(first).reindex(t.index).fillna(0.0)
        static["store_level"] = t["level"]
        t = pd.concat([t, static], axis=1)
        default = {c: float(t[c].median()) for c in ["s_mu", "s_sd", "c_mu", "c_sd", "level"]}
        dow_offset = None
        if target_level == "store_dow":
            by_dow = pd.DataFrame({"store_id": d["store_id"].to_numpy(), "dow": d["day_of_week"].to_numpy("int64"),
                                   "ls": ls}).groupby(["store_id", "dow"])["ls"].agg(["mean", "size"])
            offset = (by_dow["mean"] - t["s_mu"].reindex(by_dow.index.get_level_values(0)).to_numpy())
            offset = offset.where(by_dow["size"] >= _MIN_DOW_DAYS, 0.0)
            dow_offset = offset.unstack("dow").reindex(columns=range(1, 8)).fillna(0.0)
        return cls(table=t, default=default, dow_offset=dow_offset)

    def lookup(self, store_ids: np.ndarray) -> pd.DataFrame:
        t = self.table.reindex(pd.Index(store_ids))
        for c, v in self.default.items():
            t[c] = t[c].fillna(v)
        t["store_level"] = t["store_level"].fillna(self.default["level"])
        return t.fillna(0.0)

    def sales_offset(self, store_ids: np.ndarray, day_of_week: np.ndarray) -> np.ndarray:
        """Log-sales level of each (store, weekday) above the store's mean (0 without weekday levels)."""
        if self.dow_offset is None:
            return np.zeros(len(store_ids))
        table = self.dow_offset.reindex(pd.Index(store_ids)).fillna(0.0).to_numpy()
        return table[np.arange(len(store_ids)), np.asarray(day_of_week, dtype="int64") - 1]


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


@dataclass
class Grid:
    """Dense [stores, days, channels] array plus targets/weights (float32)."""

    stores: np.ndarray
    start: pd.Timestamp
    x: np.ndarray  # [S, T, C]
    y: np.ndarray  # [S, T, N_Y]: Y_SALES, Y_CUST, Y_WEIGHT, Y_OFFSET, Y_SCALE


def _fill_rows(grid: Grid, rows: pd.DataFrame, scaler: StoreScaler, layout: ChannelLayout, future: bool) -> None:
    if rows.empty:
        return
    s_idx = np.searchsorted(grid.stores, rows["store_id"].to_numpy())
    t_idx = ((pd.to_datetime(rows["sale_date"]) - grid.start).dt.days).to_numpy()
    ok = (s_idx < len(grid.stores)) & (t_idx >= 0) & (t_idx < grid.x.shape[1])
    ok &= grid.stores[np.minimum(s_idx, len(grid.stores) - 1)] == rows["store_id"].to_numpy()
    rows, s_idx, t_idx = rows.loc[ok], s_idx[ok], t_idx[ok]
    cov = slice(_COV0, _COV0 + len(layout.covariate_names))
    for b in range(0, len(rows), _ROW_CHUNK):
        part = slice(b, b + _ROW_CHUNK)
        grid.x[s_idx[part], t_idx[part], cov] = layout.covariates(rows.iloc[part])
    grid.x[s_idx, t_idx, CH_OBSERVED] = 1.0
    store_ids = rows["store_id"].to_numpy()
    grid.y[s_idx, t_idx, Y_OFFSET] = scaler.sales_offset(store_ids, rows["day_of_week"].to_numpy())
    if EXTRA_SALES_OFFSET in rows.columns:
        grid.y[s_idx, t_idx, Y_OFFSET] += rows[EXTRA_SALES_OFFSET].to_numpy("float32")
    if future:
        return
    sc = scaler.lookup(store_ids)
    sales = rows["sales"].to_numpy(float)
    cust = rows["customers"].fillna(0).to_numpy(float)
    good = rows["is_open"].astype(bool).to_numpy() & (sales > 0)
    s_mu = sc["s_mu"].to_numpy() + grid.y[s_idx, t_idx, Y_OFFSET]
    ss = np.where(good, (np.log1p(np.where(good, sales, 0)) - s_mu) / sc["s_sd"].to_numpy(), 0.0)
    cs = np.where(good, (np.log1p(np.where(good, cust, 0)) - sc["c_mu"].to_numpy()) / sc["c_sd"].to_numpy(), 0.0)
    grid.x[s_idx, t_idx, CH_SALES], grid.x[s_idx, t_idx, CH_CUST] = ss, cs
    grid.y[s_idx, t_idx, :Y_OFFSET] = np.stack([ss, cs, good], axis=1)
    grid.y[s_idx, t_idx, Y_SCALE] = sc["s_sd"].to_numpy()


def build_grid(stores: np.ndarray, start: pd.Timestamp, n_days: int, scaler: StoreScaler, layout: ChannelLayout,
               history: pd.DataFrame | None, future_rows: pd.DataFrame | None = None,
               future_from: pd.Timestamp | None = None) -> Grid:
    """Dense grid; history rows before ``future_from`` carry actuals, ``future_rows`` only covariates."""
    stores = np.sort(np.asarray(stores))
    grid = Grid(stores=stores, start=pd.Timestamp(start),
                x=np.zeros((len(stores), n_days, layout.n_channels), "float32"),
                y=np.zeros((len(stores), n_days, N_Y), "float32"))
    if history is not None and len(history):
        h = history if future_from is None else history.loc[pd.to_datetime(history["sale_date"]) < future_from]
        _fill_rows(grid, h, scaler, layout, future=False)
    if future_rows is not None and len(future_rows):
        _fill_rows(grid, future_rows, scaler, layout, future=True)
    if future_from is not None:
        f0 = (pd.Timestamp(future_from) - grid.start).days
        grid.x[:, f0:, CH_FUTURE] = 1.0
        grid.x[:, f0:, CH_SALES:CH_CUST + 1] = 0.0
    stat0 = _COV0 + len(layout.covariate_names)
    grid.x[:, :, stat0:] = scaler.lookup(stores)[layout.static_names].to_numpy(dtype="float32")[:, None, :]
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
    y[:, :lb, Y_WEIGHT] = 0.0  # loss only on horizon steps
    return x, y


def window_positions(grid: Grid, window: int, horizon: int, max_end: int, min_obs: float) -> tuple[np.ndarray, np.ndarray]:
    """All (store, start) window positions whose end <= max_end with a horizon target and enough lookback."""
    lb = window - horizon
    S, T, _ = grid.x.shape
    n_pos = T - window + 1
    if n_pos <= 0:
        return np.zeros(0, int), np.zeros(0, int)
    w_cum = np.concatenate([np.zeros((S, 1)), np.cumsum(grid.y[:, :, Y_WEIGHT], axis=1)], axis=1)
    o_cum = np.concatenate([np.zeros((S, 1)), np.cumsum(grid.x[:, :, CH_OBSERVED], axis=1)], axis=1)
    a = np.arange(n_pos)
    hz_w = w_cum[:, a + window] - w_cum[:, a + lb]
    lb_obs = (o_cum[:, a + lb] - o_cum[:, a]) / max(lb, 1)
    return np.nonzero((hz_w > 0) & (lb_obs >= min_obs) & ((a + window - 1) <= max_end)[None, :])
