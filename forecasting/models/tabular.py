"""One forecaster for every tabular estimator: a scikit-learn ``Pipeline`` on mart columns plus store statistics.

The training rows are the open history days with sales > 0; the design matrix is the mart's calendar, promo,
holiday, competition and event columns (:func:`forecasting.features.design_columns`) with the leakage-free dbt
store statistics of the training cut joined on.  The target is log sales minus a store statistic
(``target_offset``, by default the last year's store x weekday x promo mean): trees then spend their splits on
promo, holiday and calendar effects rather than on store levels (``target = "log"`` learns plain log1p).
A subclass supplies only the estimator (:meth:`TabularForecaster.build_pipeline`, plus any arguments its ``fit``
needs: :meth:`TabularForecaster.estimator_fit_params`) and whether it forecasts log customers as a second output
(deviation from the store's mean log customers) or derives customers from sales and the store's sales per customer.

Parameters every tabular model takes besides its estimator's: ``target`` / ``target_offset`` (above),
``carnival_memory_offset`` (default on: a carnival Monday's offset adds the store's last carnival Monday against its
year, a carnival Tuesday's its last carnival Tuesday, see :meth:`TabularForecaster._offsets`),
``holiday_memory_offset`` (default on: a state holiday's offset adds the store's past state holidays against its
year),
``trend_offset_weight`` (default 0: that many times the store's trend, its last quarter against the same quarter a
year before, added to the offset), ``drop_features`` (design columns left out, for feature trials) and
``recency_half_life_days`` (None: every training row weighs the same; else a row ``d`` days before the cut weighs
``0.5 ** (d / half_life)``).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder
from threadpoolctl import threadpool_limits

from forecasting.features import (
    StoreStats,
    design_columns,
    offset_memories,
    tabular_design,
    tabular_training_rows,
)
from forecasting.protocol import BaseForecaster, prediction_frame

log = logging.getLogger(__name__)

# defaults every tabular model shares (a subclass's default_params and the caller's params override them)
TABULAR_DEFAULTS = {"carnival_memory_offset": True, "holiday_memory_offset": True}
STORE_TREND = "recent_store_log_sales_trend"
MAX_LOG_SALES = 20.0  # expm1(20) ~ 5e8: a guard against overflow, far above any store-day


def ordinal_categoricals_first(numeric: list[str], categorical: list[str]) -> ColumnTransformer:
    """The boosters' design: the categoricals ordinal-encoded first (unknown or missing -> NaN, so the estimator's
    native categorical splits see columns 0 .. len(categorical) - 1), then the numerics as they are."""
    return ColumnTransformer([
        ("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                               encoded_missing_value=np.nan, dtype=np.float64), categorical),
        ("num", "passthrough", numeric),
    ], sparse_threshold=0.0, verbose_feature_names_out=False)


class TabularForecaster(BaseForecaster):
    # True for estimators that cannot fit a numeric column without any value (HGB's binning fails deep inside
    # scikit-learn): such columns, e.g. last year's statistics on a short history, are dropped with a warning.
    drops_empty_columns = False

    def build_pipeline(self, numeric: list[str], categorical: list[str], n_rows: int) -> Pipeline:
        raise NotImplementedError

    def estimator_fit_params(self) -> dict:
        """Keyword arguments for the pipeline's ``fit`` beyond the data (``step__name`` routing), e.g. which columns
        are categorical."""
        return {}

    def __init__(self, params: dict | None = None):
        super().__init__({**TABULAR_DEFAULTS, **self.default_params, **(params or {})})

    def _dropped_features(self) -> set[str]:
        return set(self.params.get("drop_features") or ())

    def _design_columns(self, rows: pd.DataFrame) -> tuple[list[str], list[str]]:
        """:func:`design_columns` without the ``drop_features``."""
        dropped = self._dropped_features()
        numeric, categorical = design_columns(rows)
        return [c for c in numeric if c not in dropped], [c for c in categorical if c not in dropped]

    def _recency_weights(self, rows: pd.DataFrame, stats: StoreStats) -> np.ndarray | None:
        half_life = self.params.get("recency_half_life_days")
        if half_life is None:
            return None
        age = (stats.feature_cut_date - pd.to_datetime(rows["sale_date"])).dt.days.to_numpy(float)
        return 0.5 ** (age / float(half_life))

    def _offsets(self, x: pd.DataFrame) -> np.ndarray:
        """Per row: the log-sales offset and, with a customers output, the log-customers offset."""
        width = 2 if self.forecasts_customers else 1
        if self.params.get("target", "residual") == "log":
            return np.zeros((len(x), width))
        if self.params.get("target", "residual") != "residual":
            raise ValueError(f"unknown target mode {self.params['target']!r}; expected 'residual' or 'log'")
        columns = [self.params["target_offset"], "store_log_customers_mean"][:width]
        offsets = x[columns].to_numpy(float, copy=True)
        # a carnival's memory predicts this carnival's sales at a slope near 1, where the trees, which see one
        # carnival per year, shrink it to 0.65; a state holiday's likewise (bench/README.md, "Open on a holiday").
        # Models trained before a memory's column existed have no such column
        for memory in offset_memories(self.params):
            if memory in x.columns:
                offsets[:, 0] += np.nan_to_num(x[memory].to_numpy(float))
        trend_weight = float(self.params.get("trend_offset_weight", 0.0))
        if trend_weight and STORE_TREND in x.columns:
            offsets[:, 0] += trend_weight * np.nan_to_num(x[STORE_TREND].to_numpy(float))
        return offsets

    def fit(self, history: pd.DataFrame, stats: StoreStats | None) -> TabularForecaster:
        rows = tabular_training_rows(history, stats)
        self.stats = stats
        self.numeric, self.categorical = self._design_columns(rows)
        x = tabular_design(rows, stats, self.numeric, self.categorical)
        if self.drops_empty_columns:
            empty = [c for c in self.numeric if x[c].isna().all()]
            if empty:
                log.warning("%s: no values in %d feature column(s) on %d training rows, left out: %s", self.name,
                            len(empty), len(rows), ", ".join(empty))
                self.numeric = [c for c in self.numeric if c not in empty]
                x = x.drop(columns=empty)
        y = np.log1p(rows["sales"].to_numpy(float))[:, None]
        if self.forecasts_customers:
            y = np.column_stack([y, np.log1p(rows["customers"].fillna(0).to_numpy(float))])
        y = y - self._offsets(x)
        self.pipeline = self.build_pipeline(self.numeric, self.categorical, len(rows))
        fit_params = self.estimator_fit_params()
        weights = self._recency_weights(rows, stats)
        if weights is not None:
            fit_params[f"{self.pipeline.steps[-1][0]}__sample_weight"] = weights
        t0 = time.perf_counter()
        with threadpool_limits(self.params.get("n_threads")):
            self.pipeline.fit(x, y if self.forecasts_customers else y[:, 0], **fit_params)
        log.debug("%s fitted on %d rows in %.1fs", self.name, len(rows), time.perf_counter() - t0)
        return self

    def predict(self, context: pd.DataFrame | None, target: pd.DataFrame) -> pd.DataFrame:
        """``context`` is unused: every feature is in the target rows or the fitted store statistics."""
        target = target.reset_index(drop=True)
        is_open = target["is_open"].astype("boolean").fillna(True).to_numpy(bool)
        sales, customers = np.zeros(len(target)), np.zeros(len(target))
        if is_open.any():
            x = tabular_design(target.loc[is_open], self.stats, self.numeric, self.categorical)
            with threadpool_limits(self.params.get("n_threads")):
                raw = self.pipeline.predict(x).reshape(len(x), -1) + self._offsets(x)
            log_values = np.expm1(np.clip(raw, 0, MAX_LOG_SALES))
            sales[is_open] = log_values[:, 0]
            customers[is_open] = (log_values[:, 1] if self.forecasts_customers else
                                  log_values[:, 0] / np.clip(x["store_sales_per_customer"].to_numpy(float), 1.0, None))
        return prediction_frame(target, sales, customers)
