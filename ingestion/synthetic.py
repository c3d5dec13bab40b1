"""Deterministic synthetic retail data in the Rossmann (Kaggle) file layout.

This is the platform's embedded default data: it lets the pipeline, the models and the tests run without
the real Kaggle files. It writes `train.csv` (daily history), `store.csv` (store master data) and
`test.csv` (the plan: the known calendar of the forecast horizon, without Sales/Customers).

The data is built so forecasting it is meaningful: sales are multiplicative in a store level, weekday,
promotion, holiday, seasonal, trend, competition and noise components, all driven by columns a model
can see (or learn per store), plus noise that no model can. The plan comes from the very same calendar
as the history, so the horizon's Open/Promo/holiday flags are what actually "happens" there.

Everything is computed on (store x day) numpy matrices; the only Python loops run over a handful of
years, states or holidays. The same arguments always give byte-identical files.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from ingestion.raw_layout import RAW_COLUMNS
from ingestion.synthetic_calendar import (
    HOLIDAY_CODES,
    OPEN_HOLIDAY_LOG_LIFT,
    POST_HOLIDAY_LOG_LIFT,
    PRE_HOLIDAY_LOG_LIFT,
    PUBLIC_HOLIDAY_OPEN_IF_SUNDAY_OPEN,
    SCHOOL_HOLIDAY_LOG_MEAN,
    SCHOOL_HOLIDAY_LOG_SD,
    STATES,
    STREAM_NOISE,
    STREAM_STORES,
    XMAS_BASKET_SHARE,
    YEARLY_AMPLITUDE_LOG_SD,
    build_calendar,
    random_closures,
    seasonal_effects,
)

# --------------------------------------------------------------------------------------------------
# File layout: the raw layout's columns, in Kaggle's order.
TRAIN_COLUMNS, STORE_COLUMNS, TEST_COLUMNS = (list(RAW_COLUMNS[t]) for t in ("sales", "stores", "plan"))
FILE_NAMES = {"train": "train.csv", "store": "store.csv", "test": "test.csv"}
DEFAULT_N_STORES = 60
DEFAULT_START = "2013-01-01"
DEFAULT_END = "2015-07-31"
DEFAULT_HORIZON_DAYS = 42
DEFAULT_SEED = 42

# --------------------------------------------------------------------------------------------------
# Stores. Shares and level effects loosely follow the real Rossmann data (type b: few, big, open Sundays).
STORE_TYPE_SHARES = {"a": 0.54, "b": 0.03, "c": 0.13, "d": 0.30}
STORE_TYPE_LOG_LEVEL = {"a": 0.0, "b": 0.38, "c": 0.03, "d": -0.04}
ASSORTMENT_SHARES = {"a": 0.53, "c": 0.47}          # for types a/c/d; type b stores mostly carry 'b'
ASSORTMENT_B_SHARE_OF_TYPE_B = 0.6
ASSORTMENT_LOG_LEVEL = {"a": 0.0, "b": 0.15, "c": 0.09}
BASE_SALES_MEDIAN = 5800.0                           # typical open-day sales before all effects
BASE_SALES_LOG_SD = 0.30                             # lognormal spread of store levels
SUNDAY_OPEN_PROB = {"a": 0.02, "b": 1.0, "c": 0.0, "d": 0.02}  # most stores close on Sundays
# Sales per customer (basket): store specific, type b = many small baskets, type d = fewer big ones.
SPC_MEDIAN = 9.3
SPC_LOG_SD = 0.14
STORE_TYPE_LOG_SPC = {"a": 0.0, "b": -0.55, "c": 0.0, "d": 0.12}
SPC_LOG_TREND_PER_YEAR = 0.015                       # baskets creep up (prices), customers do not
SPC_DRIFT_PHI, SPC_DRIFT_SD = 0.99, 0.006            # slow, mean-reverting drift of the basket size
CUSTOMER_NOISE_SD = 0.045                            # keeps corr(sales, customers) clearly below 1

# Per-store trend in log sales per year (mild, mostly growth).
TREND_LOG_MEAN, TREND_LOG_SD = 0.02, 0.025
TREND_EPOCH = pd.Timestamp("2013-01-01")             # fixed, so changing `start` does not move the trend

# --------------------------------------------------------------------------------------------------
# Weekly pattern (Mon..Sun, log effects): Monday catches up after the Sunday closure, Saturday is short.
DOW_LOG_EFFECT = np.array([0.17, 0.03, -0.03, -0.03, 0.02, -0.15, 0.05])
DOW_LOG_SD_STORE = 0.03                              # stores differ a little in their weekly profile

# Promotions (Kaggle's `Promo`): the promo weeks are the calendar's (ingestion.synthetic_calendar); the lift:
PROMO_LOG_LIFT_MEAN, PROMO_LOG_LIFT_SD = 0.27, 0.07  # ~+30% sales on average
PROMO_LOG_LIFT_CLIP = (0.12, 0.45)
PROMO_DOW_FACTOR = np.array([1.2, 1.0, 0.95, 0.92, 0.88, 0.0, 0.0])  # promo bites most on Mondays
PROMO_CUSTOMER_SHARE = 0.55                          # customers get only part of the promo lift
# Promo2 (the continuing coupon campaign): small lift in the listed months once the store has joined.
PROMO2_SHARE = 0.5
PROMO2_LOG_LIFT = 0.03
PROMO2_STORE_LOG_LEVEL = -0.06                       # as in the real data, Promo2 stores are a bit smaller
PROMO2_FIRST_START = pd.Timestamp("2009-01-01")
PROMO_INTERVALS = {"Jan,Apr,Jul,Oct": (1, 4, 7, 10), "Feb,May,Aug,Nov": (2, 5, 8, 11),
                   "Mar,Jun,Sept,Dec": (3, 6, 9, 12)}
PROMO_INTERVAL_SHARES = np.array([0.59, 0.23, 0.18])

# --------------------------------------------------------------------------------------------------
# Competition: a known opening date for most stores; some competitors open during the history.
COMPETITION_DISTANCE_LOG_MEDIAN, COMPETITION_DISTANCE_LOG_SD = np.log(2300.0), 1.1
COMPETITION_DISTANCE_BLANK_PER_STORES = 50           # ~1 store in 50 lacks a distance (real: 3 in 1115)
COMPETITION_SINCE_UNKNOWN_SHARE = 0.3
COMPETITION_OPENS_IN_HISTORY_SHARE = 0.25
COMPETITION_DENT = (0.05, 0.10, 3000.0)              # dent = a + b * exp(-distance / c): 5-15%
COMPETITION_MARGIN_DAYS = (90, 60)                   # openings at least this far from start / end
COMPETITION_OLD_YEARS = (1995, 2012)

# Refurbishments: a few stores have their rows missing for 3-6 months in 2H 2014 (as in Kaggle).
REFURB_SHARE = 0.08
REFURB_WINDOW = (pd.Timestamp("2014-07-01"), pd.Timestamp("2014-09-30"))  # first missing day
REFURB_DAYS = (90, 180)
REFURB_REOPEN_LOG_LIFT, REFURB_REOPEN_DECAY_DAYS = 0.25, 20.0

# Noise: AR(1) day-to-day noise, iid noise and a slow store-level drift (all in log sales).
NOISE_AR_PHI, NOISE_AR_SD = 0.6, 0.05
NOISE_IID_SD = 0.07
LEVEL_DRIFT_PHI, LEVEL_DRIFT_SD = 0.995, 0.005
ZERO_SALES_OPEN_RATE = 1e-4                          # open days with Sales == 0 (a handful)

PAD_DAYS = 7  # calendar margin so "days before/after a holiday" is right at the range edges



def _choice(rng: np.random.Generator, shares: dict[str, float], n: int) -> np.ndarray:
    keys = np.array(list(shares))
    p = np.array(list(shares.values()), dtype=float)
    return keys[rng.choice(len(keys), size=n, p=p / p.sum())]


def _lookup(table: dict[str, float], keys: np.ndarray) -> np.ndarray:
    return pd.Series(keys).map(table).to_numpy(dtype=float)


def _ar1(rng: np.random.Generator, shape: tuple[int, int], phi: float, sd: float) -> np.ndarray:
    """Stationary AR(1) series along the day axis, one per row, filtered in C (no Python day loop)."""
    eps = rng.normal(0.0, sd, size=shape)
    eps[:, 0] /= np.sqrt(1.0 - phi**2)  # start in the stationary distribution
    return lfilter([1.0], [1.0, -phi], eps, axis=1)


def _shift(x: np.ndarray, k: int) -> np.ndarray:
    """x shifted along the day axis: result[:, d] = x[:, d + k] (False/0 beyond the edge)."""
    out = np.zeros_like(x)
    if k > 0:
        out[:, :-k] = x[:, k:]
    elif k < 0:
        out[:, -k:] = x[:, :k]
    else:
        out[:] = x
    return out


def _competition(rng: np.random.Generator, S: int, start_ts: pd.Timestamp, end_ts: pd.Timestamp,
                 dates: pd.DatetimeIndex):
    """Competitor distance and opening month per store; the log-sales dent of those opening in the history.

    The dent starts on the 1st of the month on record, so CompetitionOpenSince* explains it exactly.
    """
    n_days = len(dates)
    day_num = np.arange(n_days)
    distance = np.round(np.exp(rng.normal(COMPETITION_DISTANCE_LOG_MEDIAN, COMPETITION_DISTANCE_LOG_SD, S)),
                        -1).clip(20, 75000).astype(np.int64)
    no_distance = np.zeros(S, dtype=bool)
    no_distance[rng.permutation(S)[: S // COMPETITION_DISTANCE_BLANK_PER_STORES]] = True
    comp_lo = start_ts + pd.Timedelta(days=COMPETITION_MARGIN_DAYS[0])
    comp_hi = end_ts - pd.Timedelta(days=COMPETITION_MARGIN_DAYS[1])
    u = rng.random(S)
    in_hist = (~no_distance) & (u < COMPETITION_OPENS_IN_HISTORY_SHARE) & (comp_hi > comp_lo)
    unknown = no_distance | ((u >= COMPETITION_OPENS_IN_HISTORY_SHARE)
                             & (u < COMPETITION_OPENS_IN_HISTORY_SHARE + COMPETITION_SINCE_UNKNOWN_SHARE))
    opened = comp_lo + pd.to_timedelta(rng.integers(0, max((comp_hi - comp_lo).days, 1), S), unit="D")
    opened_month = opened.to_period("M").to_timestamp()
    old_year = rng.integers(COMPETITION_OLD_YEARS[0], COMPETITION_OLD_YEARS[1] + 1, S)
    old_month = rng.integers(1, 13, S)
    since_year = np.where(in_hist, opened_month.year, old_year)
    since_month = np.where(in_hist, opened_month.month, old_month)
    dent = COMPETITION_DENT[0] + COMPETITION_DENT[1] * np.exp(-distance / COMPETITION_DENT[2])
    since_day = np.where(in_hist, (opened_month - dates[0]).days, n_days)
    effect = -(dent[:, None] * (day_num[None, :] >= since_day[:, None]))
    return distance, no_distance, unknown, since_month, since_year, effect


def _promo2(rng: np.random.Generator, promo2: np.ndarray, end_ts: pd.Timestamp, dates: pd.DatetimeIndex):
    """Promo2 join week (ISO week/year, as on record), interval names and the (store, day) active-month flag."""
    S = len(promo2)
    span = max((end_ts - pd.Timedelta(days=30) - PROMO2_FIRST_START).days, 1)
    joined = PROMO2_FIRST_START + pd.to_timedelta(rng.integers(0, span, S), unit="D")
    iso = joined.isocalendar()
    monday = joined - pd.to_timedelta(joined.day_of_week, unit="D")  # the join week's Monday
    names = np.array(list(PROMO_INTERVALS))
    idx = rng.choice(len(names), size=S, p=PROMO_INTERVAL_SHARES)
    months = np.zeros((S, 13), dtype=bool)  # [store, month]
    months[np.arange(S)[:, None], np.array(list(PROMO_INTERVALS.values()))[idx]] = True
    since_day = np.where(promo2, (monday - dates[0]).days, len(dates))
    active = (np.arange(len(dates))[None, :] >= since_day[:, None]) & months[:, dates.month.to_numpy()]
    interval = np.where(promo2, names[idx], None)
    return iso["week"].to_numpy(), iso["year"].to_numpy(), interval, active


def _refurbishments(rng: np.random.Generator, S: int, start_ts: pd.Timestamp, end_ts: pd.Timestamp,
                    dates: pd.DatetimeIndex):
    """(store, day) rows missing for refurbishment, and the decaying reopening boost (log sales).

    Only gaps that lie wholly inside the history are kept, so the plan never starts inside one.
    """
    day_num = np.arange(len(dates))
    first = REFURB_WINDOW[0] + pd.to_timedelta(
        rng.integers(0, (REFURB_WINDOW[1] - REFURB_WINDOW[0]).days + 1, S), unit="D")
    length = rng.integers(REFURB_DAYS[0], REFURB_DAYS[1] + 1, S)
    chosen = np.zeros(S, dtype=bool)
    chosen[rng.permutation(S)[: int(round(REFURB_SHARE * S))]] = True
    lo = np.asarray((first - dates[0]).days)
    hi = lo + length
    chosen &= np.asarray(first >= start_ts) & (hi < (end_ts - dates[0]).days - 14)
    in_gap = chosen[:, None] & (day_num[None, :] >= lo[:, None]) & (day_num[None, :] < hi[:, None])
    since = day_num[None, :] - hi[:, None]
    reopen = np.where(chosen[:, None] & (since >= 0),
                      REFURB_REOPEN_LOG_LIFT * np.exp(-np.maximum(since, 0) / REFURB_REOPEN_DECAY_DAYS), 0.0)
    return in_gap, reopen


def generate_frames(*, n_stores: int = DEFAULT_N_STORES, start: str = DEFAULT_START, end: str = DEFAULT_END,
                    horizon_days: int = DEFAULT_HORIZON_DAYS,
                    seed: int = DEFAULT_SEED) -> dict[str, pd.DataFrame]:
    """Build the three tables in memory: {'train': ..., 'store': ..., 'test': ...} in Kaggle's layout.

    Rows are ordered as Kaggle's files: newest date first, then by store. StateHoliday is text.
    """
    start_ts, end_ts = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    if n_stores < 1:
        raise ValueError("n_stores must be at least 1")
    if end_ts < start_ts:
        raise ValueError(f"end {end} is before start {start}")
    if horizon_days < 0:
        raise ValueError("horizon_days must be >= 0")

    rng_st = np.random.default_rng([seed, STREAM_STORES])
    rng_nz = np.random.default_rng([seed, STREAM_NOISE])

    plan_end = end_ts + pd.Timedelta(days=horizon_days)
    dates = pd.date_range(start_ts - pd.Timedelta(days=PAD_DAYS), plan_end + pd.Timedelta(days=PAD_DAYS))
    cal = build_calendar(dates, seed)
    n_days, S = len(dates), n_stores
    shape = (S, n_days)
    dow = dates.day_of_week.to_numpy()            # 0 = Monday

    # ---- stores -----------------------------------------------------------------------------------
    store_type = _choice(rng_st, STORE_TYPE_SHARES, S)
    if S >= 3 and not (store_type == "b").any():
        store_type[rng_st.integers(S)] = "b"    # keep one Sunday-open store type in every dataset
    assortment = _choice(rng_st, ASSORTMENT_SHARES, S)
    type_b = store_type == "b"
    assortment[type_b & (rng_st.random(S) < ASSORTMENT_B_SHARE_OF_TYPE_B)] = "b"
    # The state is not written: Kaggle's store.csv has none (it came as an external file); models see it
    # only through the StateHoliday/SchoolHoliday flags.
    state_idx = rng_st.choice(len(STATES), size=S, p=np.array([v[0] for v in STATES.values()]))
    sunday_open = rng_st.random(S) < _lookup(SUNDAY_OPEN_PROB, store_type)

    promo2 = rng_st.random(S) < PROMO2_SHARE
    log_base = (np.log(BASE_SALES_MEDIAN) + rng_st.normal(0, BASE_SALES_LOG_SD, S)
                + _lookup(STORE_TYPE_LOG_LEVEL, store_type) + _lookup(ASSORTMENT_LOG_LEVEL, assortment)
                + PROMO2_STORE_LOG_LEVEL * promo2)
    log_spc = np.log(SPC_MEDIAN) + rng_st.normal(0, SPC_LOG_SD, S) + _lookup(STORE_TYPE_LOG_SPC, store_type)
    trend = rng_st.normal(TREND_LOG_MEAN, TREND_LOG_SD, S)
    dow_eff = DOW_LOG_EFFECT[None, :] + rng_st.normal(0, DOW_LOG_SD_STORE, (S, 7))
    promo_lift = np.clip(rng_st.normal(PROMO_LOG_LIFT_MEAN, PROMO_LOG_LIFT_SD, S), *PROMO_LOG_LIFT_CLIP)
    school_eff = rng_st.normal(SCHOOL_HOLIDAY_LOG_MEAN, SCHOOL_HOLIDAY_LOG_SD, S)
    season_amp = np.exp(rng_st.normal(0, YEARLY_AMPLITUDE_LOG_SD, S))

    distance, no_distance, comp_unknown, since_month, since_year, competition = _competition(
        rng_st, S, start_ts, end_ts, dates)
    p2_week, p2_year, interval_names, promo2_active = _promo2(rng_st, promo2, end_ts, dates)
    in_gap, reopen = _refurbishments(rng_st, S, start_ts, end_ts, dates)

    # ---- calendar per store -------------------------------------------------------------------------
    hol = cal.holiday[state_idx]                      # (S, D)
    school = cal.school[state_idx]
    promo = np.broadcast_to(cal.promo, shape)
    sunday = (dow == 6)[None, :]
    public_open = PUBLIC_HOLIDAY_OPEN_IF_SUNDAY_OPEN & sunday_open[:, None] & (hol == 1)
    holiday_closed = (hol > 0) & ~public_open
    random_closed = random_closures(dates, S, seed) & ~sunday
    is_open = ~((sunday & ~sunday_open[:, None]) | holiday_closed | random_closed)

    # ---- expected log sales -----------------------------------------------------------------------
    t_years = ((dates - TREND_EPOCH).days.to_numpy() / 365.25)[None, :]
    yearly, xmas, special = seasonal_effects(dates)
    calendar_eff = season_amp[:, None] * yearly[None, :] + (xmas + special)[None, :]

    hc = holiday_closed.astype(np.int8)
    around_holiday = (PRE_HOLIDAY_LOG_LIFT[0] * _shift(hc, 1) + PRE_HOLIDAY_LOG_LIFT[1] * _shift(hc, 2)
                      + POST_HOLIDAY_LOG_LIFT * _shift(hc, -1) + OPEN_HOLIDAY_LOG_LIFT * public_open)
    promo_eff = promo_lift[:, None] * PROMO_DOW_FACTOR[dow][None, :] * promo
    log_mu = (log_base[:, None] + trend[:, None] * t_years + dow_eff[:, dow] + promo_eff
              + PROMO2_LOG_LIFT * promo2_active + school_eff[:, None] * school + calendar_eff
              + around_holiday + competition + reopen)

    noise = (_ar1(rng_nz, shape, NOISE_AR_PHI, NOISE_AR_SD) + rng_nz.normal(0, NOISE_IID_SD, shape)
             + _ar1(rng_nz, shape, LEVEL_DRIFT_PHI, LEVEL_DRIFT_SD))
    log_sales = log_mu + noise
    # Customers follow sales through a basket size that differs per store and moves over time.
    log_basket = (log_spc[:, None] + SPC_LOG_TREND_PER_YEAR * t_years + _ar1(rng_nz, shape, SPC_DRIFT_PHI, SPC_DRIFT_SD)
                  + (1.0 - PROMO_CUSTOMER_SHARE) * promo_eff + XMAS_BASKET_SHARE * xmas[None, :]
                  + rng_nz.normal(0, CUSTOMER_NOISE_SD, shape))
    sales = np.where(is_open, np.rint(np.exp(log_sales)), 0).astype(np.int64)
    customers = np.where(is_open, np.maximum(np.rint(np.exp(log_sales - log_basket)), 1), 0).astype(np.int64)

    # ---- split into history and plan --------------------------------------------------------------
    hist_days = np.flatnonzero((dates >= start_ts) & (dates <= end_ts))
    plan_days = np.flatnonzero((dates > end_ts) & (dates <= plan_end))
    # A handful of open history days report Sales == 0 (till outages), as in the real data.
    open_hist = np.argwhere(is_open[:, hist_days] & ~in_gap[:, hist_days])
    n_zero = int(np.ceil(len(open_hist) * ZERO_SALES_OPEN_RATE))
    zero = open_hist[rng_nz.permutation(len(open_hist))[:n_zero]]
    sales[zero[:, 0], hist_days[zero[:, 1]]] = 0
    customers[zero[:, 0], hist_days[zero[:, 1]]] = 0

    date_str = dates.strftime("%Y-%m-%d").to_numpy()
    store_ids = np.arange(1, S + 1)

    def long(days: np.ndarray, keep: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Flatten (store, day) matrices newest day first, then by store (Kaggle's row order)."""
        order = days[::-1]
        mask = np.ones((len(order), S), dtype=bool) if keep is None else keep[:, order].T
        pick = lambda m: m[:, order].T[mask]  # noqa: E731
        return {"Store": np.broadcast_to(store_ids, (len(order), S))[mask],
                "DayOfWeek": np.broadcast_to(dow[order, None] + 1, (len(order), S))[mask],
                "Date": np.broadcast_to(date_str[order, None], (len(order), S))[mask],
                "Sales": pick(sales), "Customers": pick(customers), "Open": pick(is_open).astype(np.int64),
                "Promo": pick(promo).astype(np.int64), "StateHoliday": HOLIDAY_CODES[pick(hol)],
                "SchoolHoliday": pick(school).astype(np.int64)}

    train = pd.DataFrame(long(hist_days, ~in_gap))[TRAIN_COLUMNS]
    test = pd.DataFrame(long(plan_days))
    test.insert(0, "Id", np.arange(1, len(test) + 1, dtype=np.int64))
    test = test[TEST_COLUMNS]

    def nullable(values: np.ndarray, blank: np.ndarray) -> pd.Series:
        return pd.Series(pd.array(np.where(blank, 0, values), dtype="Int64")).mask(blank)

    store = pd.DataFrame({
        "Store": store_ids,
        "StoreType": store_type,
        "Assortment": assortment,
        "CompetitionDistance": nullable(distance, no_distance),
        "CompetitionOpenSinceMonth": nullable(since_month, comp_unknown),
        "CompetitionOpenSinceYear": nullable(since_year, comp_unknown),
        "Promo2": promo2.astype(np.int64),
        "Promo2SinceWeek": nullable(p2_week, ~promo2),
        "Promo2SinceYear": nullable(p2_year, ~promo2),
        "PromoInterval": pd.Series(interval_names, dtype=object),
    })[STORE_COLUMNS]
    return {"train": train, "store": store, "test": test}


def generate_dataset(out_dir: str | Path, *, n_stores: int = DEFAULT_N_STORES, start: str = DEFAULT_START,
                     end: str = DEFAULT_END, horizon_days: int = DEFAULT_HORIZON_DAYS,
                     seed: int = DEFAULT_SEED) -> dict[str, Path]:
    """Write train.csv, store.csv and test.csv to `out_dir`; return {'train'|'store'|'test': path}.

    Same arguments -> byte-identical files (fixed float-free formatting, '\\n' line ends).
    """
    frames = generate_frames(n_stores=n_stores, start=start, end=end, horizon_days=horizon_days, seed=seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key, frame in frames.items():
        path = out / FILE_NAMES[key]
        frame.to_csv(path, index=False, lineterminator="\n", na_rep="")
        paths[key] = path
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ingestion.synthetic",
                                     description="Write deterministic synthetic Rossmann-layout data.")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--stores", type=int, default=DEFAULT_N_STORES)
    parser.add_argument("--start", default=DEFAULT_START, help="first history date (YYYY-MM-DD)")
    parser.add_argument("--end", default=DEFAULT_END, help="last history date (YYYY-MM-DD)")
    parser.add_argument("--horizon", type=int, default=DEFAULT_HORIZON_DAYS, help="plan days after --end")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    paths = generate_dataset(args.out, n_stores=args.stores, start=args.start, end=args.end,
                             horizon_days=args.horizon, seed=args.seed)
    for key, path in paths.items():
        with path.open("rb") as fh:
            n_rows = sum(1 for _ in fh) - 1
        print(f"{key}: {path} ({n_rows} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
