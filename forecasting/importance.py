"""Permutation importance on the validation fold.

Permutation importance is model-agnostic and computed on the mart columns the models read: for each column
the values are shuffled across the validation rows (one seeded permutation), the validation-fold model
predicts again, and the importance is the RMSPE increase over the unshuffled forecast
(``method = 'permutation_rmspe'``).  ``store_id`` stands for the store identity (and with it every store
statistic); columns a model does not read get 0.  The blend's importance comes from its members' shuffled
forecasts on the same rows with the same permutations, combined with the blend's validation-fold weights.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting.metrics import rmspe
from forecasting.features import BOOLEAN_FEATURES, CATEGORICAL_FEATURES, NUMERIC_FEATURES, extra_feature_columns

METHOD = "permutation_rmspe"
IMPORTANCE_COLUMNS = ["model", "model_version", "feature", "importance", "method"]


def candidate_features(frame: pd.DataFrame) -> list[str]:
    extra = extra_feature_columns(frame)
    cols = ["store_id", "is_promo", *NUMERIC_FEATURES, *CATEGORICAL_FEATURES, *BOOLEAN_FEATURES,
            *extra["numeric"], *extra["categorical"]]
    return [c for c in dict.fromkeys(cols) if c in frame.columns]


def permuted_predictions(forecaster, context: pd.DataFrame, target: pd.DataFrame,
                         features: list[str] | None = None, seed: int = 0, max_rows: int = 40_000) -> pd.DataFrame:
    """The (validation-fold) forecaster's sales forecasts with each feature shuffled: one row per (sampled) target row
    with row_store_id, row_sale_date, row_sales, row_is_open, row_forecast (nothing shuffled) and one column per
    feature (the forecast with that feature shuffled).

    Shuffling is within the open rows (closed days are forecast 0 whatever the features say).  At most
    ``max_rows`` target rows are used: whole store series are sampled, so sequence models keep their windows.
    The sample and every permutation depend only on ``target`` and ``seed``, so models scored on the same rows
    see the same shuffles -- which is what lets :func:`combine_permuted` score a blend of them.
    """
    target = target.reset_index(drop=True)
    stores = np.unique(target["store_id"].to_numpy())
    per_store = max(1, len(target) // max(len(stores), 1))
    if len(target) > max_rows:
        keep = np.random.default_rng(seed).choice(stores, size=max(1, max_rows // per_store), replace=False)
        target = target.loc[target["store_id"].isin(keep)].reset_index(drop=True)
    features = features or candidate_features(target)
    op = target["is_open"].to_numpy(bool)
    out = {"row_store_id": target["store_id"].to_numpy(), "row_sale_date": target["sale_date"].to_numpy(),
           "row_sales": target["sales"].to_numpy(float), "row_is_open": op,
           "row_forecast": forecaster.predict(context, target)["sales_pred"].to_numpy(np.float32)}
    rng = np.random.default_rng(seed)
    open_idx = np.flatnonzero(op)
    for col in features:
        shuffled = target.copy()
        values = shuffled[col].to_numpy(copy=True)
        values[open_idx] = values[rng.permutation(open_idx)]
        shuffled[col] = pd.Series(values, dtype=target[col].dtype)
        out[col] = forecaster.predict(context, shuffled)["sales_pred"].to_numpy(np.float32)
    return pd.DataFrame(out)


_PERMUTED_KEYS = ["row_store_id", "row_sale_date", "row_sales", "row_is_open", "row_forecast"]


def importance_from_permuted(permuted: pd.DataFrame) -> pd.DataFrame:
    """(feature, importance) sorted descending: each feature's RMSPE increase over the unshuffled forecast."""
    y, op = permuted["row_sales"].to_numpy(float), permuted["row_is_open"].to_numpy(bool)
    base = rmspe(y, permuted["row_forecast"].to_numpy(float), op)
    rows = [(c, float(rmspe(y, permuted[c].to_numpy(float), op) - base))
            for c in permuted.columns if c not in _PERMUTED_KEYS]
    out = pd.DataFrame(rows, columns=["feature", "importance"])
    return out.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)


def combine_permuted(members: dict[str, pd.DataFrame], weights: dict[str, float]) -> pd.DataFrame:
    """The permuted forecasts of a weighted blend (``sum_i w_i * forecast_i``, as the blend combines) from its
    members' :func:`permuted_predictions` on the same rows; a feature a member lacks counts as unshuffled."""
    names = [n for n in weights if n in members]
    first = members[names[0]]
    for n in names[1:]:
        if not first[["row_store_id", "row_sale_date"]].equals(members[n][["row_store_id", "row_sale_date"]]):
            raise ValueError(f"permuted predictions of {n!r} are not on the rows of {names[0]!r}")
    features = list(dict.fromkeys(c for n in names for c in members[n].columns if c not in _PERMUTED_KEYS))
    out = first[["row_store_id", "row_sale_date", "row_sales", "row_is_open"]].copy()
    for col in ["row_forecast", *features]:
        out[col] = sum(weights[n] * members[n][col if col in members[n].columns else "row_forecast"].to_numpy(float)
                       for n in names)
    return out
