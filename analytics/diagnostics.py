"""Per-store series diagnostics: stationarity (ADF) and autocorrelation of log sales on open days.

``series_diagnostics(history)`` -> one row per store with
    n_obs            open days with sales > 0 (the series tested)
    adf_stat, adf_pvalue, adf_lags, is_stationary (p < 0.05)
                     statsmodels ``adfuller`` on log1p(sales) of open days in date order, constant term,
                     a fixed ``maxlag`` (no lag search: 1,115 stores in a few seconds)
    acf_lag1, acf_lag7, acf_lag14
                     autocorrelation of log sales at calendar lags 1, 7 and 14 days: the correlation of the
                     store's demeaned log sales on day t and t - k over the pairs where both days are open
                     days with sales (closed days and gaps are skipped, the calendar is not shifted);
                     vectorised over all stores at once on a [stores, days] grid.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

ACF_LAGS = (1, 7, 14)
DIAGNOSTIC_COLUMNS = ["store_id", "n_obs", "adf_stat", "adf_pvalue", "adf_lags", "is_stationary",
                      *(f"acf_lag{k}" for k in ACF_LAGS)]


def _grid(hist: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    d = hist.loc[hist["is_open"].astype(bool) & (hist["sales"] > 0), ["store_id", "sale_date", "sales"]]
    stores = np.sort(d["store_id"].unique())
    dates = pd.to_datetime(d["sale_date"])
    start = dates.min()
    n_days = (dates.max() - start).days + 1 if len(d) else 0
    x = np.full((len(stores), n_days), np.nan)
    x[np.searchsorted(stores, d["store_id"].to_numpy()), (dates - start).dt.days.to_numpy()] = np.log1p(d["sales"].to_numpy(float))
    return stores, x


def acf_by_store(x: np.ndarray, lags=ACF_LAGS) -> dict[int, np.ndarray]:
    """Pairwise-complete autocorrelation per row of a [stores, days] array with NaN for missing days."""
    mu = np.nanmean(x, axis=1, keepdims=True) if x.size else x
    z = x - mu
    var = np.nanmean(z * z, axis=1)
    out = {}
    for k in lags:
        if x.shape[1] <= k:
            out[k] = np.full(x.shape[0], np.nan)
            continue
        prod = z[:, k:] * z[:, :-k]
        n = np.sum(~np.isnan(prod), axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[k] = np.where(n > 2, np.nansum(prod, axis=1) / np.maximum(n, 1) / var, np.nan)
    return out


def series_diagnostics(history: pd.DataFrame, maxlag: int = 14, alpha: float = 0.05) -> pd.DataFrame:
    from statsmodels.tsa.stattools import adfuller

    hist = history.loc[history["is_history"]] if "is_history" in history.columns else history
    stores, x = _grid(hist)
    acf = acf_by_store(x)
    rows = []
    min_obs = 3 * maxlag + 11  # adfuller with `maxlag` lags needs this many observations to be meaningful
    short = int(np.sum(np.sum(~np.isnan(x), axis=1) < min_obs)) if len(stores) else 0
    if short:
        log.warning("ADF test skipped (NaN) for %d of %d stores with fewer than %d open days with sales",
                    short, len(stores), min_obs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(len(stores)):  # one test per store series (not per row)
            s = x[i][~np.isnan(x[i])]
            stat = pval = np.nan
            lags = 0
            if len(s) >= min_obs and np.std(s) > 0:
                try:
                    stat, pval, lags, *_ = adfuller(s, maxlag=maxlag, autolag=None, regression="c")
                except (ValueError, np.linalg.LinAlgError):
                    pass
            rows.append((int(stores[i]), int(len(s)), float(stat), float(pval), int(lags)))
    out = pd.DataFrame(rows, columns=["store_id", "n_obs", "adf_stat", "adf_pvalue", "adf_lags"])
    out["is_stationary"] = out["adf_pvalue"] < alpha
    for k in ACF_LAGS:
        out[f"acf_lag{k}"] = acf[k] if len(stores) else np.zeros(0)
    return out[DIAGNOSTIC_COLUMNS]
