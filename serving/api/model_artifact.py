"""Loading the model that ``POST /predict`` serves: the one place that knows how a saved model is opened
and asked for predictions (so a change of model classes touches only this module)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from forecasting.artifacts import load_forecaster
from forecasting.features import prepare_frame

SERVED_MODEL = "random_forest"

Predictor = Callable[[pd.DataFrame], pd.DataFrame]


def load_model_artifact(directory: Path) -> Predictor:
    """The random forest saved in ``directory``, as a function from feature rows (as
    :func:`serving.features.build_feature_rows` returns them) to their ``sales_pred`` and
    ``customers_pred``, in the same order."""
    fitted = load_forecaster(directory)
    if fitted.name != SERVED_MODEL:
        raise TypeError(f"{directory} holds a {fitted.name}, not the served {SERVED_MODEL}")

    def predict(features: pd.DataFrame) -> pd.DataFrame:
        frame = prepare_frame(features.assign(__row=range(len(features))))  # sorted by store and date
        predicted = fitted.predict(None, frame)
        order = frame["__row"].to_numpy().argsort()  # back to the input order
        return predicted[["sales_pred", "customers_pred"]].iloc[order].reset_index(drop=True)

    return predict
