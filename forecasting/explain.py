"""Explanations: permutation importance on the validation fold, and charts for Dagster metadata.

Permutation importance is model-agnostic and computed on the mart columns the models read: for each column
the values are shuffled across the validation rows (one seeded permutation), the validation-fold model
predicts again, and the importance is the RMSPE increase over the unshuffled forecast
(``method = 'permutation_rmspe'``).  ``store_id`` stands for the store identity (and with it every store
statistic); columns a model does not read get 0.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd

from forecasting.evaluation import rmspe
from forecasting.features import BOOLEAN_FEATURES, CATEGORICAL_FEATURES, NUMERIC_FEATURES, extra_feature_columns

METHOD = "permutation_rmspe"
IMPORTANCE_COLUMNS = ["model", "model_version", "feature", "importance", "method"]


def candidate_features(frame: pd.DataFrame) -> list[str]:
    extra = extra_feature_columns(frame)
    cols = ["store_id", "is_promo", *NUMERIC_FEATURES, *CATEGORICAL_FEATURES, *BOOLEAN_FEATURES,
            *extra["numeric"], *extra["categorical"]]
    return [c for c in dict.fromkeys(cols) if c in frame.columns]


def permutation_importance(module, fitted, context: pd.DataFrame, target: pd.DataFrame,
                           features: list[str] | None = None, seed: int = 0, max_rows: int = 40_000) -> pd.DataFrame:
    """(feature, importance) sorted descending; ``target`` are validation rows with actual sales.

    Shuffling is within the open rows (closed days are forecast 0 whatever the features say).  At most
    ``max_rows`` target rows are used: whole store series are sampled, so sequence models keep their windows.
    """
    target = target.reset_index(drop=True)
    stores = np.unique(target["store_id"].to_numpy())
    per_store = max(1, len(target) // max(len(stores), 1))
    if len(target) > max_rows:
        keep = np.random.default_rng(seed).choice(stores, size=max(1, max_rows // per_store), replace=False)
        target = target.loc[target["store_id"].isin(keep)].reset_index(drop=True)
    features = features or candidate_features(target)
    y, op = target["sales"].to_numpy(float), target["is_open"].to_numpy(bool)
    base = rmspe(y, module.predict(fitted, context, target)["sales_pred"].to_numpy(), op)
    rng = np.random.default_rng(seed)
    open_idx = np.flatnonzero(op)
    rows = []
    for col in features:
        shuffled = target.copy()
        values = shuffled[col].to_numpy(copy=True)
        values[open_idx] = values[rng.permutation(open_idx)]
        shuffled[col] = pd.Series(values, dtype=target[col].dtype)
        score = rmspe(y, module.predict(fitted, context, shuffled)["sales_pred"].to_numpy(), op)
        rows.append((col, float(score - base)))
    out = pd.DataFrame(rows, columns=["feature", "importance"])
    return out.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------------------------------------- charts
def _png_markdown(fig, alt: str) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return f"![{alt}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode('ascii')})"


def importance_chart_markdown(importance: pd.DataFrame, title: str, top: int = 15) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = importance.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(d) + 1))
    ax.barh(d["feature"], d["importance"], color="#4c72b0")
    ax.set_xlabel("RMSPE increase when shuffled (validation fold)")
    ax.set_title(title)
    return _png_markdown(fig, title)


def forecast_vs_actual_markdown(validation: pd.DataFrame, title: str, n_stores: int = 3) -> str:
    """Validation-fold forecast, 80% interval and actuals for a few stores (the first by store id)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stores = sorted(validation["store_id"].unique())[:n_stores]
    fig, axes = plt.subplots(len(stores), 1, figsize=(7, 2.2 * len(stores)), sharex=True, squeeze=False)
    for ax, s in zip(axes[:, 0], stores):
        d = validation.loc[validation["store_id"] == s].sort_values("sale_date")
        ax.fill_between(d["sale_date"], d["sales_lower"], d["sales_upper"], color="#4c72b0", alpha=0.2, label="80% interval")
        ax.plot(d["sale_date"], d["sales_pred"], color="#4c72b0", label="forecast")
        ax.plot(d["sale_date"], d["sales"], color="black", lw=0.8, marker=".", label="actual")
        ax.set_ylabel(f"store {s}")
    axes[0, 0].legend(loc="upper right", fontsize=7)
    axes[0, 0].set_title(title)
    fig.autofmt_xdate()
    return _png_markdown(fig, title)
