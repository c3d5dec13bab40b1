"""Entity-embedding network (Guo & Berkhahn, "Entity Embeddings of Categorical Variables", 2016; third in Kaggle's
Rossmann competition): learned embeddings of the store and the calendar next to the tabular models' numeric design.

Design and target
    Exactly the tabular models' (:mod:`forecasting.models.tabular`): open history days with sales > 0, the design
    of :func:`forecasting.features.tabular_design` (mart calendar / promo / holiday columns, the dbt store statistics
    of the training cut, the recent sales per cut) and the target log1p(sales) minus ``target_offset`` (the
    store x weekday x promo mean over the year before the cut).  ``store_id`` joins the design's numeric columns
    so the network can embed it (the other tabular models leave it out: their store levels come from statistics).
    Prediction is :meth:`TabularForecaster.predict` unchanged: closed days 0, customers = sales / the store's sales
    per customer.

Inputs (:class:`DesignEncoder`)
    ``embedded`` columns (store, weekday, day of month, month, week of year, promo, school holiday) and every
    categorical design column (store type, assortment, state holiday, state group) become integer codes, one
    embedding each of ``min(max_embedding_dim, (levels + 1) // 2)`` dimensions; code 0 is a value not seen in
    training.  The other numerics are standardised on the training rows and clipped to +-``clip_z`` (competition
    distances and day counts are long-tailed); a column with missing values gets a 0/1 missing flag and 0 (its
    mean) in place of NaN.

Network
    The embeddings concatenated with the numerics, then ``units`` dense ReLU layers each followed by ``dropout``
    and one linear output (the paper's 1000 -> 500; the defaults are smaller, see bench/README.md "Entity-embedding
    network (issue 14)": on two shared CPU cores the 20-minute pipeline leaves about a minute per fit).

Training
    Adam on the mean squared log deviation, batches of ``batch_size`` rows shuffled every epoch.  The last
    ``validation_days`` before the cut are held out: ``EarlyStopping`` on their loss restores the best epoch's
    weights (0 days: every epoch on all rows), from epoch ``min_epochs`` on.  ``n_seeds`` networks are trained apart
    (seeds ``seed``, ``seed + 1``, ..) and averaged into one Keras model (:func:`seed_mean`).  Seeded
    (``keras.utils.set_random_seed``), so a fit repeats exactly; one INFO line per epoch.  No warm start: every fit
    needs the store statistics of its own cut, which ``refit`` does not get.

Artifact
    The Keras network in :data:`MODEL_FILE` and everything else (parameters, store statistics, encoder) in
    :data:`STATE_FILE` (as :mod:`forecasting.models.lstm` does), both checksummed by :mod:`forecasting.artifacts`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import joblib
import keras
import numpy as np
import pandas as pd

from forecasting.features import StoreStats, tabular_design, tabular_training_rows
from forecasting.models.networks import seed_mean
from forecasting.models.tabular import TabularForecaster

log = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
STATE_FILE = "model_state.joblib"
UNSEEN_CODE = 0  # the embedding row of a value not seen in training (the seen values are 1..n)
PREDICT_CHUNK_ROWS = 65536  # rows per direct network call in predict (bounded memory, no Keras predict loop)

DEFAULT_PARAMS: dict = {
    # calendar and identity columns embedded besides the design's categoricals (absent ones are skipped)
    "embedded": ["store_id", "day_of_week", "day_of_month", "month", "week_of_year", "is_promo",
                 "is_school_holiday"],
    "max_embedding_dim": 10,  # the paper's store embedding has 10 dimensions
    "units": [256, 128],
    "dropout": 0.25,  # 0 / 0.1 / 0.25 / 0.4 on backtest_1 and _2: 0.25 best (bench/README.md)
    "clip_z": 5.0,
    "batch_size": 2048,
    "learning_rate": 2e-3,
    "learning_rate_decay": 1.0,  # the rate of epoch e (from 0) is learning_rate * decay ** e
    "epochs": 8,
    "patience": 2,
    "min_epochs": 3,  # early stopping only picks among epochs from this one on (with 1 it stopped after epoch 2)
    "n_seeds": 1,  # networks trained apart (seeds seed, seed + 1, ..) whose mean is the forecast
    "validation_days": 28,
    "seed": 42,
    "target_offset": "store_dow_promo_log_sales_mean_year",
    "recency_half_life_days": None,
}
FAST_PARAMS: dict = {"units": [16], "max_embedding_dim": 3, "epochs": 1, "min_epochs": 1, "batch_size": 256,
                     "validation_days": 14}


@dataclass
class DesignEncoder:
    """The network's two inputs from a tabular design frame: category codes and scaled numerics."""

    embedded: list[str]
    vocabularies: list[np.ndarray]  # per embedded column, its training values (code = position + 1)
    numeric: list[str]
    mean: np.ndarray
    std: np.ndarray
    flagged: list[str]  # numerics with missing values in training: they get a missing flag
    clip_z: float

    @classmethod
    def fit(cls, x: pd.DataFrame, embedded: list[str], clip_z: float) -> DesignEncoder:
        vocabularies = [np.sort(pd.unique(x[c].dropna())) for c in embedded]
        numeric = [c for c in x.columns if c not in embedded]
        # column by column: a frame-wide agg() of ~100 float columns holds GiBs of temporaries on 1M rows.
        # NaN skipped; an all-NaN column gets mean 0 / std 1 (its values are all NaN -> 0 then)
        mean = np.array([x[c].mean() for c in numeric], "float64")
        std = np.array([x[c].std() for c in numeric], "float64")
        return cls(embedded=list(embedded), vocabularies=vocabularies, numeric=numeric,
                   mean=np.nan_to_num(mean, nan=0.0).astype("float32"),
                   std=np.where(std > 0, std, 1.0).astype("float32"),  # NaN > 0 is False: 1 as well
                   flagged=[c for c in numeric if x[c].isna().any()], clip_z=float(clip_z))

    @property
    def cardinalities(self) -> list[int]:
        """Embedding rows per embedded column: its training values plus the unseen row."""
        return [len(v) + 1 for v in self.vocabularies]

    @property
    def width(self) -> int:
        return len(self.numeric) + len(self.flagged)

    def categories(self, x: pd.DataFrame) -> np.ndarray:
        """int32 [rows, embedded]: 1 + the value's position in its vocabulary, UNSEEN_CODE for any other value."""
        codes = [pd.Categorical(x[c], categories=v).codes.astype("int32") + 1 for c, v in
                 zip(self.embedded, self.vocabularies)]
        return np.column_stack(codes) if codes else np.zeros((len(x), 0), "int32")

    def numbers(self, x: pd.DataFrame) -> np.ndarray:
        """float32 [rows, width]: standardised, clipped numerics (NaN -> 0, the mean) and the missing flags."""
        out = np.empty((len(x), self.width), "float32")
        for j, c in enumerate(self.numeric):  # filled column by column: no wide float64 copy of the frame
            out[:, j] = x[c].to_numpy()
        z = out[:, :len(self.numeric)]
        z -= self.mean
        z /= self.std
        np.clip(z, -self.clip_z, self.clip_z, out=z)  # NaN stays NaN
        np.nan_to_num(z, nan=0.0, copy=False)
        for j, c in enumerate(self.flagged, start=len(self.numeric)):
            out[:, j] = x[c].isna().to_numpy()
        return out


def embedding_dim(levels: int, max_dim: int) -> int:
    return int(max(1, min(max_dim, (levels + 1) // 2)))


def build_network(encoder: DesignEncoder, params: dict, name: str = "entity_embedding") -> keras.Model:
    categories = keras.Input((len(encoder.embedded),), dtype="int32", name="categories")
    numbers = keras.Input((encoder.width,), name="numbers")
    parts = [keras.layers.Flatten(name=f"flat_{column}")(
        keras.layers.Embedding(levels, embedding_dim(levels, int(params["max_embedding_dim"])),
                               name=f"embed_{column}")(categories[:, i:i + 1]))
        for i, (column, levels) in enumerate(zip(encoder.embedded, encoder.cardinalities))]
    h = keras.layers.Concatenate(name="design")([*parts, numbers])
    for i, units in enumerate(params["units"]):
        h = keras.layers.Dense(int(units), activation="relu", name=f"dense_{i + 1}")(h)
        if params.get("dropout"):
            h = keras.layers.Dropout(float(params["dropout"]), name=f"dropout_{i + 1}")(h)
    # zero-initialised: an untrained network forecasts the offset itself (no deviation from the store's weekday x
    # promo mean), not a random deviation of the size of the log sales
    out = keras.layers.Dense(1, kernel_initializer="zeros", name="log_deviation")(h)
    return keras.Model([categories, numbers], out, name=name)


class _EpochLog(keras.callbacks.Callback):
    """One INFO line per epoch (instead of Keras' progress bars on stdout)."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs, self.t0 = epochs, time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        val = f" val_loss={logs['val_loss']:.5f}" if "val_loss" in logs else ""
        stop = " (early stop)" if self.model.stop_training else ""
        log.info("entity_embedding epoch %d/%d: loss=%.5f%s %.0fs%s", epoch + 1, self.epochs, logs["loss"], val,
                 time.perf_counter() - self.t0, stop)


@dataclass
class EmbeddingNetwork:
    """The fitted encoder and network; ``predict`` gives the log deviation of design rows (what
    :meth:`TabularForecaster.predict` asks of its pipeline)."""

    encoder: DesignEncoder
    network: keras.Model
    history: list[dict]  # per seed: Keras' epoch history (loss, val_loss, learning_rate)

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        categories, numbers = self.encoder.categories(x), self.encoder.numbers(x)
        # direct calls, not Keras' predict loop: no dataset set-up per call (the API predicts a few rows at a time)
        chunks = [self.network([categories[i:i + PREDICT_CHUNK_ROWS], numbers[i:i + PREDICT_CHUNK_ROWS]],
                               training=False) for i in range(0, len(x), PREDICT_CHUNK_ROWS)]
        return (np.concatenate([keras.ops.convert_to_numpy(c) for c in chunks]) if chunks
                else np.zeros((0, 1), "float32"))[:, 0].astype("float64")


def train_network(encoder: DesignEncoder, categories: np.ndarray, numbers: np.ndarray, y: np.ndarray,
                  n_held_out: int, weights: np.ndarray | None, params: dict) -> EmbeddingNetwork:
    """Fit ``n_seeds`` networks (seeds ``seed``, ``seed + 1``, ..) on the rows before the last ``n_held_out``, each
    early-stopped on the held-out rows' loss (none held out: ``epochs`` epochs); the fitted network is their mean."""
    n_train = len(y) - n_held_out  # slices below: views, no copies of the inputs
    validation = (([categories[n_train:], numbers[n_train:]], y[n_train:]) if n_held_out else None)
    epochs = int(params["epochs"])
    rate, decay = float(params["learning_rate"]), float(params.get("learning_rate_decay", 1.0))
    log.info("entity_embedding: %d training rows, %d held out; embedded: %s; %d numeric inputs", n_train,
             n_held_out, ", ".join(encoder.embedded), encoder.width)
    members, histories = [], []
    for i in range(int(params.get("n_seeds", 1))):
        seed = int(params["seed"]) + i
        keras.utils.set_random_seed(seed)
        network = build_network(encoder, params, name=f"entity_embedding_{i}")
        network.compile(optimizer=keras.optimizers.Adam(learning_rate=rate), loss="mse")
        callbacks: list[keras.callbacks.Callback] = [keras.callbacks.LearningRateScheduler(lambda e: rate * decay ** e)]
        if validation is not None:
            callbacks.append(keras.callbacks.EarlyStopping(
                "val_loss", patience=int(params["patience"]), restore_best_weights=True,
                start_from_epoch=int(params.get("min_epochs", 1)) - 1))
        callbacks.append(_EpochLog(epochs))
        fitted = network.fit([categories[:n_train], numbers[:n_train]], y[:n_train],
                             sample_weight=None if weights is None else weights[:n_train],
                             batch_size=int(params["batch_size"]), epochs=epochs, validation_data=validation,
                             shuffle=True, callbacks=callbacks, verbose=0)
        members.append(network)
        histories.append({k: [float(v) for v in vals] for k, vals in fitted.history.items()})
    return EmbeddingNetwork(encoder=encoder, network=seed_mean(members, "entity_embedding_seeds"), history=histories)


class EntityEmbeddingForecaster(TabularForecaster):
    name = "entity_embedding"
    forecasts_customers = False  # customers = sales / the store's sales per customer (TabularForecaster.predict)
    default_params = DEFAULT_PARAMS
    fast_params = FAST_PARAMS

    def fit(self, history: pd.DataFrame, stats: StoreStats | None) -> EntityEmbeddingForecaster:
        rows = tabular_training_rows(history, stats)
        days = int(self.params["validation_days"])
        dates = pd.to_datetime(rows["sale_date"])
        held_out = (dates > dates.max() - pd.Timedelta(days=days)).to_numpy() if days > 0 else np.zeros(len(rows), bool)
        if held_out.all():  # a history no longer than the held-out window: train on all of it, fixed epochs
            held_out[:] = False
        # the held-out rows last: the training and held-out inputs are then slices of one array, not copies
        rows = rows.iloc[np.argsort(held_out, kind="stable")].reset_index(drop=True)
        n_held_out = int(held_out.sum())
        self.stats = stats
        numeric, self.categorical = self._design_columns(rows)
        self.numeric = numeric + ["store_id"]
        x = tabular_design(rows, stats, self.numeric, self.categorical)
        y = (np.log1p(rows["sales"].to_numpy(float)) - self._offsets(x)[:, 0]).astype("float32")
        weights = self._recency_weights(rows, stats)
        weights = None if weights is None else weights.astype("float32")
        dropped = self._dropped_features()
        embedded = [c for c in self.params["embedded"] if c in x.columns and c not in dropped] + self.categorical
        # the encoder describes all training rows (held-out ones too: they are history before the cut as well)
        encoder = DesignEncoder.fit(x, embedded, self.params["clip_z"])
        categories, numbers = encoder.categories(x), encoder.numbers(x)
        del rows, x  # the network's inputs replace them: peak memory
        t0 = time.perf_counter()
        self.pipeline = train_network(encoder, categories, numbers, y, n_held_out, weights, self.params)
        log.info("entity_embedding fitted on %d rows in %.0fs (epochs per seed: %s)", len(y), time.perf_counter() - t0,
                 [len(h["loss"]) for h in self.pipeline.history])
        return self

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        path = directory / MODEL_FILE
        self.pipeline.network.save(path)
        joblib.dump({"params": self.params, "stats": self.stats, "numeric": self.numeric,
                     "categorical": self.categorical, "encoder": self.pipeline.encoder,
                     "history": self.pipeline.history}, directory / STATE_FILE, compress=3)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> EntityEmbeddingForecaster:
        directory = Path(directory)
        state = joblib.load(directory / STATE_FILE)
        loaded = cls(state["params"])
        loaded.stats, loaded.numeric, loaded.categorical = state["stats"], state["numeric"], state["categorical"]
        loaded.pipeline = EmbeddingNetwork(encoder=state["encoder"], history=state["history"],
                                           network=keras.models.load_model(directory / MODEL_FILE, compile=False))
        return loaded
