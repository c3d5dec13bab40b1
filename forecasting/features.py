"""Feature frame loading, time-based splits and leakage-free store statistics.

Input to every model is a pandas DataFrame with the columns of ``marts.fct_store_daily_features``:
history rows (``is_history`` true, with ``sales``/``customers``) and plan rows (``is_history`` false).

Store statistics (target encodings of the store identity) come from dbt: ``marts.agg_store_sales_stats`` holds
them at every backtest cut and at the forecast cut, each computed only from the history before its cut.
:meth:`StoreStats.from_table` takes the rows of one cut and :func:`add_store_stats` joins them onto any frame,
so nothing from a validation or forecast window can leak into the features.

Recent sales (``marts.agg_store_recent_sales``: the last weeks before a cut, the store's trend) are in dbt at every
cut one horizon apart, back to the start of the history.  :func:`recent_sales_features` joins each row onto the cut it
is forecast from -- a fold's rows onto the fold's cut, older training rows onto the latest cut on or before them
-- so a model learns from history how the weeks before a cut relate to the days after it, with every value taken
from days before that row's cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

FEATURE_TABLE = "marts.fct_store_daily_features"

KEY_COLUMNS = ["store_id", "sale_date"]
TARGET_COLUMNS = ["sales", "customers"]

NUMERIC_FEATURES = [
    "day_of_week",
    "day_of_month",
    "month",
    "year",
    "week_of_year",
    "day_of_year",
    "competition_distance_m",
    "months_since_competition_open",
    "days_since_state_holiday",
    "days_until_state_holiday",
    "days_since_closed",
    "days_until_closed",
]
CATEGORICAL_FEATURES = ["store_type", "assortment", "state_holiday"]
BOOLEAN_FEATURES = [
    "is_promo",
    "is_state_holiday",
    "is_school_holiday",
    "is_competition_open",
    "is_promo2_active",
    "is_promo2_month",
]
# Joined on by add_store_stats() from the dbt statistics of the training cut (marts.agg_store_sales_stats).
# Windows before the cut: no suffix = the long run (3 years), ``year`` = 364 days, ``recent``/``quarter`` = 91 days.
STORE_LEVEL_FEATURES = [
    "store_log_sales_mean",
    "store_log_sales_median",
    "store_log_sales_std",
    "store_year_log_sales_mean",
    "store_recent_log_sales_mean",
    "store_log_customers_mean",
    "store_sales_per_customer",
    "store_open_share",
]
STORE_STAT_FEATURES = STORE_LEVEL_FEATURES + [
    "store_dow_log_sales_mean",
    "store_dow_log_customers_mean",
    "store_promo_log_sales_mean",
    "store_dow_promo_log_sales_mean",
    "store_dow_promo_log_sales_mean_year",
    "store_dow_promo_log_sales_mean_quarter",
    "store_month_log_sales_effect",
]

CARNIVAL_MEMORY = "recent_store_carnival_monday_vs_year"
CARNIVAL_TUESDAY_MEMORY = "recent_store_carnival_tuesday_vs_year"
HOLIDAY_MEMORY = "recent_store_state_holiday_vs_year"
# Joined on by recent_sales_features() from marts.agg_store_recent_sales at the cut each row is forecast from.
RECENT_SALES_FEATURES = [
    "days_after_cut",  # the row's day in the horizon of its cut (0 = the cut)
    "recent_log_sales_last_vs_year",  # latest same weekday and promo status before the cut against its year mean
    "recent_log_sales_8_weeks_vs_year",  # the same over the last 8 weeks
    "recent_days_since_last",  # age of that latest day
    "recent_store_log_sales_4_weeks_vs_year",  # the store's last 4 weeks against its year
    "recent_store_log_sales_trend",  # the store's last quarter against the same quarter a year before
    # the year's mean at the row's cut minus the one at the training cut (0 on the forecast rows): what level the
    # store had when the row was forecast, against the level the target offset describes
    "recent_log_sales_year_vs_cut",  # same weekday and promo status
    "recent_store_log_sales_year_vs_cut",  # the store
    # on carnival Mondays (0 on other days): the store's sales on the latest carnival Monday before the cut against
    # its Mondays -- the same stores empty at carnival every year; on the day only, so one split finds them
    CARNIVAL_MEMORY,
    CARNIVAL_TUESDAY_MEMORY,  # the same on carnival Tuesdays, against the store's Tuesdays
    # on state holidays (0 on other days): the store's mean sales on the state holidays it sold on before the cut,
    # against its same weekday and promo status -- the few stores open on a holiday sell alike on the next one
    HOLIDAY_MEMORY,
]

_BOOL_COLUMNS = ["is_history", "is_open", *BOOLEAN_FEATURES]
_INT_COLUMNS = ["store_id", *NUMERIC_FEATURES[:6]]


def load_feature_frame(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """``marts.fct_store_daily_features`` as a clean DataFrame (:func:`prepare_frame`)."""
    return prepare_frame(con.execute(f"SELECT * FROM {FEATURE_TABLE} ORDER BY store_id, sale_date").df())


def prepare_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Normalise dtypes (nullable ints -> float, nullable booleans -> bool, dates -> datetime64).

    ``is_open`` NULL (Kaggle's plan has a few) counts as open; other NULL booleans count as false.
    Returns a copy sorted by store_id, sale_date with a fresh RangeIndex.
    """
    df = frame.copy()
    df["sale_date"] = pd.to_datetime(df["sale_date"]).astype("datetime64[ns]")
    for col in _BOOL_COLUMNS:
        if col in df.columns:
            fill = True if col == "is_open" else False
            df[col] = df[col].astype("boolean").fillna(fill).astype(bool)
    for col in _INT_COLUMNS:
        if col in df.columns:
            num = pd.to_numeric(df[col]).astype("float64")
            df[col] = num if num.isna().any() else num.astype("int64")
    for col in [c for c in NUMERIC_FEATURES + TARGET_COLUMNS if c in df.columns and c not in _INT_COLUMNS]:
        df[col] = pd.to_numeric(df[col]).astype("float64")
    for col in CATEGORICAL_FEATURES:
        if col in df.columns:
            df[col] = df[col].astype(object).where(df[col].notna(), "missing").astype(str)
    if "state_holiday" in df.columns:
        df["state_holiday"] = df["state_holiday"].where(df["state_holiday"].isin(["a", "b", "c"]), "0")
    return df.sort_values(KEY_COLUMNS, kind="stable").reset_index(drop=True)


def history_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.loc[frame["is_history"]].reset_index(drop=True)


def plan_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.loc[~frame["is_history"]].reset_index(drop=True)


STORE_STATS_TABLE = "marts.agg_store_sales_stats"
RECENT_SALES_TABLE = "marts.agg_store_recent_sales"
RECENT_GRAIN = "recent_store_dow_promo"  # the grain of the recent-sales rows in load_store_stats_table's frame
_RECENT_KEYS = ["feature_cut_date", "store_id", "day_of_week", "is_promo"]
_RECENT_COLUMNS = ["log_sales_mean_year", "log_sales_last_vs_year", "log_sales_8_weeks_vs_year", "days_since_last"]
_RECENT_STORE_COLUMNS = ["store_log_sales_mean_year", "store_log_sales_4_weeks_vs_year", "store_log_sales_trend",
                         "store_log_sales_carnival_vs_year", "store_log_sales_carnival_tuesday_vs_year",
                         "store_log_sales_state_holiday_vs_year"]
# The event memories: feature -> (the recent_store column it reads, the model parameter that adds it to the offset)
_EVENT_MEMORIES = {CARNIVAL_MEMORY: ("store_log_sales_carnival_vs_year", "carnival_memory_offset"),
                   CARNIVAL_TUESDAY_MEMORY: ("store_log_sales_carnival_tuesday_vs_year", "carnival_memory_offset"),
                   HOLIDAY_MEMORY: ("store_log_sales_state_holiday_vs_year", "holiday_memory_offset")}


def offset_memories(params: dict) -> list[str]:
    """The event memory features a model's ``params`` add to its sales offset (a switch absent from a model saved
    before it existed is off: that model was trained without the memory)."""
    return [feature for feature, (_, switch) in _EVENT_MEMORIES.items() if params.get(switch, False)]


def _event_days(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per event memory, the rows of ``frame`` on its event's day (none where the mart lacks the column)."""
    carnival_day = (frame["days_from_carnival_monday"].to_numpy() if "days_from_carnival_monday" in frame
                    else np.full(len(frame), -99))
    holiday = (frame["is_state_holiday"].to_numpy(bool) if "is_state_holiday" in frame
               else np.zeros(len(frame), dtype=bool))
    return {CARNIVAL_MEMORY: carnival_day == 0, CARNIVAL_TUESDAY_MEMORY: carnival_day == 1, HOLIDAY_MEMORY: holiday}


def load_store_stats_table(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The per-cut store features of dbt in one frame: ``marts.agg_store_sales_stats`` at every fold cut, then the
    rows of ``marts.agg_store_recent_sales`` at every cut (grain ``RECENT_GRAIN``, the columns the models use)."""
    stats = con.execute(f"SELECT * FROM {STORE_STATS_TABLE} ORDER BY feature_cut_date, store_id, grain").df()
    recent = con.execute(
        f"SELECT '{RECENT_GRAIN}' AS grain, {', '.join(_RECENT_KEYS + _RECENT_COLUMNS + _RECENT_STORE_COLUMNS)} "
        f"FROM {RECENT_SALES_TABLE} ORDER BY feature_cut_date, store_id, day_of_week, is_promo").df()
    table = pd.concat([stats, recent], ignore_index=True)
    table["feature_cut_date"] = pd.to_datetime(table["feature_cut_date"]).astype("datetime64[ns]")
    return table


@dataclass
class StoreStats:
    """The store statistics of one cut of ``marts.agg_store_sales_stats`` (dbt computes them from the history
    strictly before the cut), as lookup tables joined onto rows by :func:`add_store_stats`.

    Medians (``sales_median_*``, ``customers_median_*``) are for the baseline; the ``store_*`` columns are the
    tabular models' STORE_STAT_FEATURES.
    """

    store: pd.DataFrame  # index store_id
    store_dow: pd.DataFrame  # index (store_id, day_of_week)
    store_promo: pd.DataFrame  # index (store_id, is_promo)
    store_dow_promo: pd.DataFrame  # index (store_id, day_of_week, is_promo)
    store_month: pd.DataFrame  # index (store_id, month)
    global_defaults: dict = field(default_factory=dict)
    feature_cut_date: pd.Timestamp | None = None
    # marts.agg_store_recent_sales at every cut up to feature_cut_date: index (feature_cut_date, store_id,
    # day_of_week, is_promo) and, for the store_* columns, (feature_cut_date, store_id).  None in versions saved
    # before the table existed (they use no recent-sales feature).
    recent: pd.DataFrame | None = None
    recent_store: pd.DataFrame | None = None

    @classmethod
    def from_table(cls, table: pd.DataFrame, feature_cut_date) -> "StoreStats":
        """The rows of ``table`` (``load_store_stats_table``) at ``feature_cut_date`` (first day not trained on)."""
        cut = pd.Timestamp(feature_cut_date).normalize()
        rows = table.loc[pd.to_datetime(table["feature_cut_date"]) == cut]
        if rows.empty:
            have = sorted({f"{d:%Y-%m-%d}" for d in pd.to_datetime(table["feature_cut_date"])})
            raise ValueError(
                f"no store statistics for the cut {cut:%Y-%m-%d} in {STORE_STATS_TABLE} (it has {have or 'no cuts'}): "
                "rebuild the dbt models, with the vars backtest_folds / backtest_horizon_days matching the training folds"
            )

        def grain(name: str, keys: list[str], columns: dict[str, str]) -> pd.DataFrame:
            g = rows.loc[rows["grain"] == name]
            idx = g[keys].astype({"is_promo": bool} if "is_promo" in keys else {})
            out = pd.DataFrame({new: g[old].astype("float64").to_numpy() for new, old in columns.items()},
                               index=pd.MultiIndex.from_frame(idx) if len(keys) > 1 else pd.Index(idx[keys[0]]))
            return out

        medians = {"sales_median_quarter": "sales_median_quarter", "customers_median_quarter": "customers_median_quarter"}
        store = grain("store", ["store_id"], {
            "store_log_sales_mean": "log_sales_mean_long",
            "store_log_sales_median": "sales_median_year",
            "store_log_sales_std": "log_sales_std_long",
            "store_year_log_sales_mean": "log_sales_mean_year",
            "store_recent_log_sales_mean": "log_sales_mean_quarter",
            "store_log_customers_mean": "log_customers_mean_long",
            "store_sales_per_customer": "sales_per_customer_long",
            "store_open_share": "open_share_year",
            "sales_median_year": "sales_median_year",
            "customers_median_year": "customers_median_year",
            **medians,
        })
        store["store_log_sales_median"] = np.log1p(store["store_log_sales_median"])
        for recent in ("store_year_log_sales_mean", "store_recent_log_sales_mean", "store_log_sales_median"):
            store[recent] = store[recent].fillna(store["store_log_sales_mean"])
        store_dow = grain("store_dow", ["store_id", "day_of_week"], {
            "store_dow_log_sales_mean": "log_sales_mean_long",
            "store_dow_log_customers_mean": "log_customers_mean_long",
            **medians,
        })
        store_promo = grain("store_promo", ["store_id", "is_promo"], {"store_promo_log_sales_mean": "log_sales_mean_long"})
        store_dow_promo = grain("store_dow_promo", ["store_id", "day_of_week", "is_promo"], {
            "store_dow_promo_log_sales_mean": "log_sales_mean_long",
            "store_dow_promo_log_sales_mean_year": "log_sales_mean_year",
            "store_dow_promo_log_sales_mean_quarter": "log_sales_mean_quarter",
            **medians,
        })
        store_month = grain("store_month", ["store_id", "month"], {"store_month_log_sales_effect": "month_log_sales_effect"})
        defaults = {c: float(store[c].median()) for c in store.columns}
        recent, recent_store = _recent_sales_lookups(table, cut)
        return cls(store=store, store_dow=store_dow, store_promo=store_promo, store_dow_promo=store_dow_promo,
                   store_month=store_month, global_defaults=defaults, feature_cut_date=cut, recent=recent,
                   recent_store=recent_store)


def _recent_sales_lookups(table: pd.DataFrame, cut: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The recent-sales rows of ``table`` at the cuts up to ``cut`` as the lookups of :func:`recent_sales_features`."""
    dates = pd.to_datetime(table["feature_cut_date"])
    rows = table.loc[(table["grain"] == RECENT_GRAIN) & (dates <= cut)]
    if not (pd.to_datetime(rows["feature_cut_date"]) == cut).any():
        raise ValueError(f"no recent sales for the cut {cut:%Y-%m-%d} in {RECENT_SALES_TABLE}: rebuild the dbt models, "
                         "with the vars backtest_folds / backtest_horizon_days matching the training folds")
    keys = rows[_RECENT_KEYS].astype({"store_id": "int64", "day_of_week": "int64", "is_promo": bool})
    recent = pd.DataFrame(rows[_RECENT_COLUMNS].astype("float64").to_numpy(), columns=_RECENT_COLUMNS,
                          index=pd.MultiIndex.from_frame(keys))
    store_rows = rows.drop_duplicates(["feature_cut_date", "store_id"])
    recent_store = pd.DataFrame(
        store_rows[_RECENT_STORE_COLUMNS].astype("float64").to_numpy(), columns=_RECENT_STORE_COLUMNS,
        index=pd.MultiIndex.from_frame(keys.loc[store_rows.index, ["feature_cut_date", "store_id"]]))
    return recent, recent_store


def stats_lookup(frame: pd.DataFrame, table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    idx = pd.MultiIndex.from_frame(frame[keys]) if len(keys) > 1 else pd.Index(frame[keys[0]])
    return table.reindex(idx).reset_index(drop=True)


def add_store_stats(frame: pd.DataFrame, stats: StoreStats) -> pd.DataFrame:
    """Return a copy of ``frame`` with the STORE_STAT_FEATURES columns joined on (row order kept).

    Fallbacks: store x weekday / store x promo -> store mean; store x weekday x promo -> store x weekday
    (its quarter's and year's means -> the long-run mean); month effect -> 0; a store without statistics -> the
    median over stores.
    """
    out = frame.reset_index(drop=True)  # a new frame (copy-on-write): the columns set below never reach ``frame``
    keys = out[["store_id", "day_of_week", "month", "is_promo"]].copy()
    keys["is_promo"] = keys["is_promo"].astype(bool)
    st = stats_lookup(keys, stats.store, ["store_id"])
    for col in STORE_LEVEL_FEATURES:
        out[col] = st[col].fillna(stats.global_defaults[col]).to_numpy()
    mean = pd.Series(out["store_log_sales_mean"].to_numpy())
    dow = stats_lookup(keys, stats.store_dow, ["store_id", "day_of_week"])
    out["store_dow_log_sales_mean"] = dow["store_dow_log_sales_mean"].fillna(mean).to_numpy()
    out["store_dow_log_customers_mean"] = (
        dow["store_dow_log_customers_mean"].fillna(pd.Series(out["store_log_customers_mean"].to_numpy())).to_numpy()
    )
    promo = stats_lookup(keys, stats.store_promo, ["store_id", "is_promo"])
    out["store_promo_log_sales_mean"] = promo["store_promo_log_sales_mean"].fillna(mean).to_numpy()
    dow_promo = stats_lookup(keys, stats.store_dow_promo, ["store_id", "day_of_week", "is_promo"])
    out["store_dow_promo_log_sales_mean"] = (
        dow_promo["store_dow_promo_log_sales_mean"].fillna(pd.Series(out["store_dow_log_sales_mean"])).to_numpy()
    )
    for window in ("year", "quarter"):
        col = f"store_dow_promo_log_sales_mean_{window}"
        out[col] = dow_promo[col].fillna(pd.Series(out["store_dow_promo_log_sales_mean"])).to_numpy()
    out["store_month_log_sales_effect"] = (
        stats_lookup(keys, stats.store_month, ["store_id", "month"]).iloc[:, 0].fillna(0.0).to_numpy()
    )
    return out


def recent_sales_features(frame: pd.DataFrame, stats: StoreStats) -> pd.DataFrame:
    """The RECENT_SALES_FEATURES of ``frame``'s rows (a frame of those columns only, in row order, RangeIndex: the
    caller's wide frame is not copied).

    Each row takes the recent sales at the cut it is forecast from: the latest cut of ``stats.recent`` on or before
    its day -- the training cut for the days from it on (the forecast or fold rows), for older training rows the
    start of their horizon-long block.  Rows before the first cut and combinations without data get NaN.
    """
    rows = frame[["store_id", "sale_date", "day_of_week", "is_promo"]].reset_index(drop=True)
    out = pd.DataFrame(index=rows.index)
    cuts = np.sort(stats.recent.index.get_level_values("feature_cut_date").unique().to_numpy())
    days = pd.to_datetime(rows["sale_date"]).to_numpy("datetime64[ns]")
    position = np.searchsorted(cuts, days, side="right") - 1
    row_cut = pd.Series(np.where(position >= 0, cuts[np.maximum(position, 0)], np.datetime64("NaT")),
                        dtype="datetime64[ns]")
    keys = pd.DataFrame({"feature_cut_date": row_cut, "store_id": rows["store_id"].astype("int64"),
                         "day_of_week": rows["day_of_week"].astype("int64"), "is_promo": rows["is_promo"].astype(bool)})
    at_row_cut = stats_lookup(keys, stats.recent, _RECENT_KEYS)
    store_at_row_cut = stats_lookup(keys, stats.recent_store, ["feature_cut_date", "store_id"])
    at_training_cut = stats_lookup(keys.assign(feature_cut_date=stats.feature_cut_date), stats.recent, _RECENT_KEYS)
    store_at_training_cut = stats_lookup(keys.assign(feature_cut_date=stats.feature_cut_date), stats.recent_store,
                                         ["feature_cut_date", "store_id"])
    out["days_after_cut"] = (pd.to_datetime(rows["sale_date"]) - row_cut).dt.days.astype("float64").to_numpy()
    out["recent_log_sales_last_vs_year"] = at_row_cut["log_sales_last_vs_year"].to_numpy()
    out["recent_log_sales_8_weeks_vs_year"] = at_row_cut["log_sales_8_weeks_vs_year"].to_numpy()
    out["recent_days_since_last"] = at_row_cut["days_since_last"].to_numpy()
    out["recent_store_log_sales_4_weeks_vs_year"] = store_at_row_cut["store_log_sales_4_weeks_vs_year"].to_numpy()
    out["recent_store_log_sales_trend"] = store_at_row_cut["store_log_sales_trend"].to_numpy()
    out["recent_log_sales_year_vs_cut"] = (at_row_cut["log_sales_mean_year"]
                                           - at_training_cut["log_sales_mean_year"]).to_numpy()
    out["recent_store_log_sales_year_vs_cut"] = (store_at_row_cut["store_log_sales_mean_year"]
                                                 - store_at_training_cut["store_log_sales_mean_year"]).to_numpy()
    no_event = np.where(row_cut.isna().to_numpy(), np.nan, 0.0)
    for feature, on_day in _event_days(frame).items():
        column = _EVENT_MEMORIES[feature][0]
        # statistics saved before a column existed lack it: no memory (models trained then never used it)
        memory = store_at_row_cut[column].to_numpy() if column in store_at_row_cut else np.zeros(len(frame))
        out[feature] = np.where(on_day, memory, no_event)
    return out


def event_memory(frame: pd.DataFrame, stats: StoreStats | None, memories: list[str]) -> np.ndarray:
    """Per row of ``frame``, the log-sales offset the store's ``memories`` (of :func:`offset_memories`) give on their
    event's day: its last carnival Monday against its Mondays on carnival Mondays, its last carnival Tuesday against
    its Tuesdays on carnival Tuesdays (CARNIVAL_MEMORY, CARNIVAL_TUESDAY_MEMORY), its past state holidays against its
    year on state holidays (HOLIDAY_MEMORY); 0 on every other day and where it is unknown (no statistics, a store
    without that event)."""
    out = np.zeros(len(frame))
    if stats is None or stats.recent is None or not memories:
        return out
    days = _event_days(frame)
    rows = np.logical_or.reduce([days[memory] for memory in memories])
    if rows.any():  # recent_sales_features' rule, on the event days only
        values = recent_sales_features(frame.loc[rows], stats)[list(memories)]
        out[rows] = np.nan_to_num(values.to_numpy(float)).sum(axis=1)
    return out


# ---------------------------------------------------------------------------------------------------------
# Extra calendar columns of the mart (added over time in dbt: promo-run position, Easter/Christmas proximity,
# school-holiday weeks, refurbishment reopen distances, trend/fourier terms, state_group, ...).  The models use
# whichever are present; none is required.  Columns that carry sales or customers (anything named *sales* /
# *customer*) are never used: dbt computes them over the whole history, which would leak across backtest cuts.
# ---------------------------------------------------------------------------------------------------------
NON_FEATURE_COLUMNS = {"store_id", "sale_date", "is_history", "sales", "customers", "is_open", "row_source"}
_LEAKY_MARKERS = ("sales", "customer", "revenue", "basket")
# Integer-coded mart columns that are categories, not quantities (treated as categorical when present).
CATEGORICAL_CODE_COLUMNS = ("state_group",)


def extra_feature_columns(frame: pd.DataFrame) -> dict[str, list[str]]:
    """Mart columns beyond the base feature lists, by kind (numeric incl. booleans / categorical)."""
    known = NON_FEATURE_COLUMNS | set(NUMERIC_FEATURES) | set(CATEGORICAL_FEATURES) | set(BOOLEAN_FEATURES)
    known |= set(STORE_STAT_FEATURES) | set(RECENT_SALES_FEATURES)
    numeric, categorical = [], []
    for col in frame.columns:
        if col in known or any(m in col.lower() for m in _LEAKY_MARKERS):
            continue
        s = frame[col]
        if col in CATEGORICAL_CODE_COLUMNS or col.endswith("_group"):
            categorical.append(col)
        elif pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            numeric.append(col)
        elif pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s) or isinstance(s.dtype, pd.CategoricalDtype):
            if s.nunique(dropna=True) <= 250:
                categorical.append(col)
    return {"numeric": sorted(numeric), "categorical": sorted(categorical)}


def numeric_matrix_column(s: pd.Series) -> np.ndarray:
    """A mart column as float64 (booleans 0/1, NULL -> NaN)."""
    if pd.api.types.is_bool_dtype(s) or str(s.dtype) == "boolean":
        return s.astype("boolean").astype("float64").to_numpy(dtype="float64", na_value=np.nan)
    return pd.to_numeric(s, errors="coerce").astype("float64").to_numpy(dtype="float64", na_value=np.nan)


def tabular_training_rows(train_df: pd.DataFrame, stats: StoreStats | None) -> pd.DataFrame:
    """Open history days with sales > 0 (what the tabular models learn from), checked against the cut of
    ``stats``: it must be the day after the last training day (later statistics would leak the forecast
    window into the features, earlier ones would not describe the training rows)."""
    if stats is None:
        raise ValueError(f"the tabular models need the store statistics of their training cut ({STORE_STATS_TABLE})")
    hist = train_df.loc[train_df["is_history"]] if "is_history" in train_df.columns else train_df
    last = pd.Timestamp(hist["sale_date"].max())
    if stats.feature_cut_date != last + pd.Timedelta(days=1):
        raise ValueError(f"store statistics of the cut {stats.feature_cut_date:%Y-%m-%d} do not belong to training "
                         f"data ending {last:%Y-%m-%d} (the cut must be the next day)")
    return hist.loc[hist["is_open"].astype(bool) & (hist["sales"] > 0)].reset_index(drop=True)


def design_columns(rows: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The tabular models' (numeric, categorical) columns: the base features present in ``rows``, booleans as
    numerics, the store statistics, the recent sales, then the mart's extra columns (:func:`extra_feature_columns`)."""
    extra = extra_feature_columns(rows)
    numeric = ([c for c in NUMERIC_FEATURES + BOOLEAN_FEATURES if c in rows.columns] + STORE_STAT_FEATURES
               + RECENT_SALES_FEATURES + extra["numeric"])
    categorical = [c for c in CATEGORICAL_FEATURES if c in rows.columns] + extra["categorical"]
    return numeric, categorical


def tabular_design(frame: pd.DataFrame, stats: StoreStats, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """The tabular models' input: store statistics and (when ``numeric`` asks for them) recent sales joined on,
    numerics as float (NULL -> NaN, a missing column all NaN), categoricals as text with 'missing' for NULL."""
    x = add_store_stats(frame, stats)
    if stats.recent is not None and set(RECENT_SALES_FEATURES) & set(numeric):
        recent = recent_sales_features(x, stats)
        x = x.assign(**{c: recent[c].to_numpy() for c in recent.columns})  # shallow: no copy of the wide frame
    data = {}
    for c in numeric:
        data[c] = numeric_matrix_column(x[c]) if c in x.columns else np.full(len(x), np.nan)
    for c in categorical:
        s = x[c] if c in x.columns else pd.Series("missing", index=x.index)
        data[c] = s.astype(object).where(s.notna(), "missing").astype(str).to_numpy()
    return pd.DataFrame(data)
