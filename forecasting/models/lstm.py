"""Global sequence-to-sequence LSTM over sliding windows of per-store daily series (Keras 3).

Data layout
    Every store is reindexed onto one continuous daily grid (``[stores, days, channels]``); days without a row
    (refurbishment gaps, before a store's first day) are zeros with ``observed = 0`` -- so gaps never shift the
    calendar.  Sales and customers are scaled per store: ``(log1p(x) - mean) / std`` with the store's mean/std
    over its *training* open days with sales > 0; sales (``target_level = "store_dow"``, the default) around the
    store's weekday level instead of its mean, so the network learns deviations from the weekly pattern.

Window
    ``lookback_days`` days of [scaled sales, scaled customers, future=0, observed, known covariates] followed by
    the horizon days, where the sales/customers channels are zeroed and ``future = 1`` but the known covariates
    are present: every mart column the tree models see, scaled by one rule per kind and fixed at fit time
    (:class:`forecasting.models.lstm_windows.ChannelLayout`, saved with the model), and the calendar as phases.
    Static store channels (store-constant categoricals such as store type, assortment, state group; the scaled
    store level) are repeated along time.  Windows are cut from the grid with ``sliding_window_view`` (no Python
    loops over rows).

Network
    A learned store embedding (``store_embedding_dim``; row ``store_id % store_buckets``) sets the initial
    hidden and cell states of both LSTM layers -- one global model that still knows which store it forecasts.
    Two stacked ``LSTM(return_sequences=True)`` layers and a per-step ``Dense(2)`` head (Dense on a 3-D tensor
    is what TimeDistributed(Dense) does; TimeDistributed itself mis-shapes ``predict()`` output when the time
    axis is dynamic in Keras 3.15) predict scaled log sales and customers at every step; the loss is a masked
    MSE that only counts horizon steps on open observed days with sales > 0, plus ``rmspe_weight`` times the
    squared sales percentage error (:func:`masked_loss`).  The network is length-agnostic,
    so a plan longer than the training horizon (Kaggle's is 48 days) still works.

Training
    One ``network.fit``: :class:`_WindowDataset` draws fresh random windows every epoch (``windows_per_epoch``
    of all valid positions, seeded numpy Generator; Keras seeded by ``keras.utils.set_random_seed``, so runs
    repeat exactly).  :class:`_EpochMetrics` writes ``val_rmspe`` -- sales RMSPE on a validation slice, one window
    per store whose horizon is the last ``horizon_days`` of the training data (training windows end before it)
    -- into the epoch logs, where ``ReduceLROnPlateau`` (halving) and ``EarlyStopping`` (restoring the best
    weights) read it from epoch ``min_epochs`` on; :class:`_EpochLog` logs each epoch.
    ``n_seeds`` networks are trained apart (seeds ``seed``, ``seed + 1``, ..; each with its own early stopping and
    its own warm-started refits) and saved as one Keras model that forecasts their mean scaled log sales.
    ``refit``: warm start from a fitted model on the full history for ``refit_epochs`` epochs (used by
    :mod:`forecasting.runner` after the backtests, much cheaper than training from scratch).
    Backtests (``WARM_START_FOLDS``): the first fold trains from scratch, each later fold warm-starts from the
    previous fold's model for ``fold_refit_epochs`` epochs on its own (longer) training data.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import keras
import numpy as np
import pandas as pd
from keras import ops

from forecasting.features import StoreStats, event_memory, offset_memories
from forecasting.models.lstm_windows import (
    EXTRA_SALES_OFFSET,
    Y_CUST,
    Y_OFFSET,
    Y_SALES,
    Y_SCALE,
    Y_WEIGHT,
    ChannelLayout,
    Grid,
    StoreScaler,
    build_grid,
    cut_windows,
    window_positions,
)
from forecasting.models.networks import seed_mean, seed_members
from forecasting.protocol import BaseForecaster, prediction_frame

log = logging.getLogger(__name__)

DEFAULT_PARAMS: dict = {
    "lookback_days": 42,
    "horizon_days": 42,
    "units": [64, 32],
    "store_embedding_dim": 8,  # 0: no store embedding
    "store_buckets": 2048,  # embedding rows; a store's row is store_id % store_buckets
    "dropout": 0.0,
    "batch_size": 256,
    "epochs": 16,
    "windows_per_epoch": "auto",  # int, or "auto": 5% of the candidate windows, clipped to [4096, 32768]
    "patience": 4,
    # early stopping and the rate schedule look at val_rmspe from this epoch on (as the entity-embedding network's
    # min_epochs): seed 42 scored 0.1712 after one epoch, never beat it, and stopped after five with the first
    # epoch's weights (bench/README.md, "LSTM warm-up")
    "min_epochs": 5,
    "lr_patience": 2,  # halve the learning rate after this many epochs without improvement (0: never)
    "learning_rate": 2e-3,
    "refit_epochs": 2,
    "fold_refit_epochs": 2,  # backtests: later folds warm-start from the previous fold's model (WARM_START_FOLDS)
    "refit_learning_rate": 1e-3,
    "customers_weight": 0.5,
    "rmspe_weight": 10.0,  # weight of the squared percentage error in the loss (0: log-space MSE only)
    "target_level": "store_dow",  # sales scaled around the store's mean ("store") or its weekday level ("store_dow")
    # a carnival Monday's (Tuesday's) level adds the store's last carnival Monday (Tuesday) against its Mondays
    # (Tuesdays), the tabular models' offset from the store statistics: a 42-day lookback never sees the last
    # carnival (bench/README.md, "The LSTM's carnival and its seeds")
    "carnival_memory_offset": True,
    "holiday_memory_offset": True,  # a state holiday's level adds the store's past holidays against its year
    "min_lookback_observed": 0.5,
    "seed": 42,
    # networks trained apart (seeds seed, seed + 1, ..) whose mean log forecast is the model's: one seed's validation
    # RMSPE moves by up to 0.008 with the training path alone, two seeds' mean by 0.002, four seeds scored best
    # (bench/README.md, "The LSTM's carnival and its seeds", "More LSTM seeds"); four fit the 20 minutes beside a
    # smaller forest ("A fourth LSTM seed for a smaller forest")
    "n_seeds": 4,
    "verbose": 2,  # epoch progress log at INFO (0: at DEBUG)
}
FAST_PARAMS: dict = {**DEFAULT_PARAMS, "n_seeds": 1, "lookback_days": 21, "units": [8, 8], "batch_size": 64, "epochs": 2,
                     "windows_per_epoch": 256, "patience": 1, "min_epochs": 1, "refit_epochs": 1, "verbose": 0}
# forecasting.runner: fit the first fold from scratch, warm-start each later fold (and the final refit) from
# the previous fold's model; each fold's model has only seen data before its own cut.
WARM_START_FOLDS = True
MIN_LOOKBACK_DAYS = 7  # a shorter history than lookback + horizon shrinks the lookback, down to one week
MODEL_FILE = "lstm.keras"
STATE_FILE = "lstm_state.joblib"

def masked_loss(customers_weight: float = 0.5, rmspe_weight: float = 0.0):
    """MSE of the scaled log sales and customers on the horizon's open days with sales, plus ``rmspe_weight``
    times the squared sales percentage error (what RMSPE scores: log-space MSE forecasts the median, which
    overshoots on days it is unsure of; the percentage error pulls those down)."""
    def loss(y_true, y_pred):
        w = y_true[..., Y_WEIGHT]
        err = (ops.square(y_true[..., Y_SALES] - y_pred[..., 0])
               + customers_weight * ops.square(y_true[..., Y_CUST] - y_pred[..., 1]))
        if rmspe_weight:
            # log(forecast / actual), clipped so that a wild early forecast cannot blow up the gradient
            log_ratio = ops.clip((y_pred[..., 0] - y_true[..., Y_SALES]) * y_true[..., Y_SCALE], -2.0, 2.0)
            err = err + rmspe_weight * ops.square(1.0 - ops.exp(log_ratio))
        return ops.sum(w * err) / (ops.sum(w) + 1e-6)

    loss.__name__ = "masked_mse"
    return loss


def _uses_embedding(params: dict) -> bool:
    return int(params.get("store_embedding_dim", 0) or 0) > 0


def _inputs(params: dict, x: np.ndarray, store_ids: np.ndarray):
    """Network inputs: the windows, plus the store index (store_id % store_buckets) with an embedding."""
    if not _uses_embedding(params):
        return x
    return [x, (np.asarray(store_ids, dtype="int64") % int(params["store_buckets"])).astype("int32")[:, None]]


def build_network(params: dict, n_channels: int, name: str = "store_sales_lstm") -> keras.Model:
    """Two stacked LSTMs; with ``store_embedding_dim`` a learned store embedding sets both layers' initial
    states (a length-agnostic way to condition every step on the store identity)."""
    units = list(params["units"])
    u1, u2 = units[0], units[1] if len(units) > 1 else units[0]
    inp = keras.Input(shape=(None, n_channels), name="window")
    inputs, s1, s2 = inp, None, None
    if _uses_embedding(params):
        sid = keras.Input(shape=(1,), dtype="int32", name="store")
        emb = keras.layers.Flatten(name="store_flat")(
            keras.layers.Embedding(int(params["store_buckets"]), int(params["store_embedding_dim"]), name="store_embedding")(sid))
        s1 = [keras.layers.Dense(u1, activation="tanh", name="h0_1")(emb), keras.layers.Dense(u1, name="c0_1")(emb)]
        s2 = [keras.layers.Dense(u2, activation="tanh", name="h0_2")(emb), keras.layers.Dense(u2, name="c0_2")(emb)]
        inputs = [inp, sid]
    x = keras.layers.LSTM(u1, return_sequences=True, name="lstm_1")(inp, initial_state=s1)
    if params.get("dropout"):
        x = keras.layers.Dropout(params["dropout"])(x)
    x = keras.layers.LSTM(u2, return_sequences=True, name="lstm_2")(x, initial_state=s2)
    out = keras.layers.Dense(2, name="head")(x)  # applied per time step (TimeDistributed mis-shapes in predict())
    return keras.Model(inputs, out, name=name)


def _rmspe_scaled(network, x, y, mu, sd) -> float:
    """Sales RMSPE (original scale, steps with weight > 0) of the network on windows x / targets y."""
    p = network.predict(x, batch_size=1024, verbose=0)[..., 0]
    w = y[..., Y_WEIGHT] > 0
    if not w.any():
        return float("nan")
    level = mu[:, None] + y[..., Y_OFFSET]
    act = np.expm1(y[..., Y_SALES] * sd[:, None] + level)[w]
    pred = np.expm1(p * sd[:, None] + level)[w]
    return float(np.sqrt(np.mean(((act - pred) / act) ** 2)))


class _WindowDataset(keras.utils.PyDataset):
    """``per_epoch`` random training windows per epoch, materialised one batch at a time (bounded memory).

    The draw happens in ``on_epoch_begin``: ``fit`` also calls ``on_epoch_end`` once before the first epoch, so
    epoch e gets the Generator's e-th draw (as the old per-epoch loop did).  ``__getitem__`` only reads the
    draw, so Keras' shape-inference reads and tf.data's prefetching cannot change it.
    """

    def __init__(self, grid: Grid, s_idx, a_idx, p: dict, per_epoch: int):
        super().__init__()  # one worker: batches in order
        self.grid, self.s_idx, self.a_idx, self.p, self.per_epoch = grid, s_idx, a_idx, p, per_epoch
        self.horizon, self.bs = int(p["horizon_days"]), int(p["batch_size"])
        self.rng = np.random.default_rng(int(p["seed"]))
        self.sel = np.arange(per_epoch)  # before the first epoch only shape inference reads this

    def on_epoch_begin(self):
        self.sel = self.rng.choice(len(self.s_idx), size=self.per_epoch, replace=False)

    def __len__(self) -> int:
        return math.ceil(self.per_epoch / self.bs)

    def __getitem__(self, i: int):
        sel = self.sel[i * self.bs : (i + 1) * self.bs]
        s = self.s_idx[sel]
        x, y = cut_windows(self.grid, s, self.a_idx[sel], int(self.p["lookback_days"]) + self.horizon, self.horizon)
        inputs = _inputs(self.p, x, self.grid.stores[s])
        return (tuple(inputs) if isinstance(inputs, list) else inputs), y


class _EpochMetrics(keras.callbacks.Callback):
    """Puts the epoch's learning rate and (with a validation slice) ``val_rmspe`` into the epoch logs; first in
    the callback list, as Keras calls callbacks in list order and ReduceLROnPlateau / EarlyStopping read it."""

    def __init__(self, val):
        super().__init__()
        self.val = val

    def on_epoch_end(self, epoch, logs=None):
        logs["learning_rate"] = float(ops.convert_to_numpy(self.model.optimizer.learning_rate))
        if self.val is not None:
            logs["val_rmspe"] = _rmspe_scaled(self.model, *self.val)


class _PlateauAfterWarmup(keras.callbacks.ReduceLROnPlateau):
    """``ReduceLROnPlateau`` that, like ``EarlyStopping(start_from_epoch=warmup)``, ignores the first ``warmup``
    epochs: an early lucky validation score would otherwise halve the rate and be restored as the best weights."""

    def __init__(self, warmup: int, **kwargs):
        super().__init__(**kwargs)
        self.warmup = warmup

    def on_epoch_end(self, epoch, logs=None):
        if epoch >= self.warmup:
            super().on_epoch_end(epoch, logs)


class _EpochLog(keras.callbacks.Callback):
    """One log line per epoch (last in the list: sees val_rmspe and an early stop) instead of Keras' bars."""

    def __init__(self, epochs: int, level: int):
        super().__init__()
        self.epochs, self.level, self.t0 = epochs, level, time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        val = f" val_rmspe={logs['val_rmspe']:.4f}" if "val_rmspe" in logs else ""
        stop = " (early stop)" if self.model.stop_training else ""
        log.log(self.level, "epoch %d/%d: loss=%.4f%s lr=%.2g %.0fs%s", epoch + 1, self.epochs, logs["loss"], val,
                logs["learning_rate"], time.perf_counter() - self.t0, stop)


@dataclass
class LSTMModel:
    params: dict
    network: keras.Model
    scaler: StoreScaler
    layout: ChannelLayout
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    history: list[dict] = field(default_factory=list)  # the epochs of each seed member (a dict in older models)
    # the store statistics the event memory is read from (None: no memory offset, as in models saved before it)
    offset_stats: StoreStats | None = None


def _with_offsets(rows: pd.DataFrame | None, params: dict, stats: StoreStats | None) -> pd.DataFrame | None:
    """``rows`` with their EXTRA_SALES_OFFSET column (the carnival and state-holiday memories the model's params
    switch on) where the model uses one."""
    memories = offset_memories(params)
    if rows is None or stats is None or not memories:
        return rows
    return rows.assign(**{EXTRA_SALES_OFFSET: event_memory(rows, stats, memories)})


def _history_only(df: pd.DataFrame) -> pd.DataFrame:
    h = df.loc[df["is_history"]] if "is_history" in df.columns else df
    return h.reset_index(drop=True)


@dataclass
class _TrainingWindows:
    """The grid of a training history and the window positions cut from it, shared by every seed member."""

    grid: Grid
    s_idx: np.ndarray
    a_idx: np.ndarray
    per_epoch: int
    val: tuple | None  # (inputs, targets, store mu, store sd) of the validation slice
    start: pd.Timestamp
    end: pd.Timestamp


def _training_windows(hist, scaler, layout, p, with_validation) -> _TrainingWindows:
    """The grid of ``hist``, its training window positions and (``with_validation``) the validation slice."""
    horizon = int(p["horizon_days"])
    window = int(p["lookback_days"]) + horizon
    start, end = pd.Timestamp(hist["sale_date"].min()), pd.Timestamp(hist["sale_date"].max())
    n_days = (end - start).days + 1
    grid = build_grid(np.unique(hist["store_id"].to_numpy()), start, n_days, scaler, layout, hist)
    val, max_end = None, n_days - 1
    if with_validation:
        # validation slice: one window per store with horizon = last `horizon` training days;
        # training windows must end before that slice starts
        vs, va = window_positions(grid, window, horizon, n_days - 1, 0.0)
        vs, va = vs[va == n_days - window], va[va == n_days - window]
        if len(vs):
            sc = scaler.lookup(grid.stores[vs])
            vx, vy = cut_windows(grid, vs, va, window, horizon)
            val = (_inputs(p, vx, grid.stores[vs]), vy, sc["s_mu"].to_numpy(), sc["s_sd"].to_numpy())
            max_end = n_days - 1 - horizon
    s_idx, a_idx = window_positions(grid, window, horizon, max_end, float(p["min_lookback_observed"]))
    if len(s_idx) == 0:  # very short history: drop the validation slice, then the lookback requirement
        val, max_end = None, n_days - 1
        s_idx, a_idx = window_positions(grid, window, horizon, max_end, 0.0)
    if len(s_idx) == 0:
        raise ValueError(f"lstm: history of {n_days} days too short for windows of {window} days")
    wpe = p.get("windows_per_epoch", "auto")
    if wpe in (None, "auto"):
        wpe = int(np.clip(0.05 * len(s_idx), 4096, 32768))
    per_epoch = min(int(wpe), len(s_idx))
    log.log(_log_level(p), "%d stores x %d days x %d channels, %d candidate windows, %d windows/epoch, "
            "validation windows: %d", len(grid.stores), n_days, layout.n_channels, len(s_idx), per_epoch,
            0 if val is None else len(val[1]))
    return _TrainingWindows(grid, s_idx, a_idx, per_epoch, val, start, end)


def _log_level(p: dict) -> int:
    return logging.INFO if int(p.get("verbose", 0)) else logging.DEBUG


def _train(network, windows: _TrainingWindows, p, epochs, learning_rate) -> dict:
    """Train ``network`` on ``windows`` (the rate schedule and early stopping where it has a validation slice);
    returns the epoch history."""
    network.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=1.0),
                    loss=masked_loss(float(p["customers_weight"]), float(p.get("rmspe_weight", 0.0) or 0.0)))
    callbacks, stop = [_EpochMetrics(windows.val)], None
    if windows.val is not None:  # without one (refit), neither: the old loop also kept the rate and ran every epoch
        warmup = int(p.get("min_epochs", 1)) - 1  # epochs before early stopping and the rate schedule count
        if int(p.get("lr_patience", 0) or 0):
            callbacks.append(_PlateauAfterWarmup(
                warmup, monitor="val_rmspe", factor=0.5, patience=int(p["lr_patience"]), mode="min", min_delta=1e-5))
        stop = keras.callbacks.EarlyStopping("val_rmspe", patience=int(p["patience"]), mode="min", min_delta=1e-5,
                                             restore_best_weights=True, start_from_epoch=warmup)
        callbacks.append(stop)
    callbacks.append(_EpochLog(int(epochs), _log_level(p)))
    # shuffle=False keeps the drawn order; no steps_per_epoch, or Keras would reuse an iterator that tf.data has
    # already prefetched from the previous epoch's draw
    data = _WindowDataset(windows.grid, windows.s_idx, windows.a_idx, p, windows.per_epoch)
    h = network.fit(data, epochs=int(epochs), shuffle=False, callbacks=callbacks, verbose=0).history
    history = {k: [float(v) for v in h.get(k, [])] for k in ["loss", "val_rmspe", "learning_rate"]}
    history["best_val_rmspe"] = None if stop is None or stop.best is None else float(stop.best)
    return history


def _fitting_lookback(p: dict, hist: pd.DataFrame) -> dict:
    """``p`` with a lookback that leaves a whole window in the history (a warning when it had to shrink)."""
    dates = pd.to_datetime(hist["sale_date"])
    n_days = (dates.max() - dates.min()).days + 1 if len(hist) else 0
    lookback, horizon = int(p["lookback_days"]), int(p["horizon_days"])
    if n_days >= lookback + horizon:
        return p
    if n_days - horizon < MIN_LOOKBACK_DAYS:
        raise ValueError(f"lstm: history of {n_days} days is too short: at least {horizon + MIN_LOOKBACK_DAYS} days "
                         f"are needed ({MIN_LOOKBACK_DAYS} lookback days before a {horizon}-day horizon)")
    log.warning("lstm: history of %d days is shorter than lookback %d + horizon %d: lookback lowered to %d days",
                n_days, lookback, horizon, n_days - horizon)
    return {**p, "lookback_days": n_days - horizon}


def _member_name(member: int) -> str:
    return "store_sales_lstm" if member == 0 else f"store_sales_lstm_{member}"  # unique inside the seed mean


def _member_params(p: dict, member: int) -> dict:
    """Parameters of seed member ``member``: seeds ``seed``, ``seed + 1``, .. (windows and weights alike)."""
    return {**p, "seed": int(p["seed"]) + member}


def fit(train_df: pd.DataFrame, params: dict | None = None, stats: StoreStats | None = None) -> LSTMModel:
    """``n_seeds`` networks trained apart on the same windows layout; the model forecasts their mean."""
    hist = _history_only(train_df)
    p = _fitting_lookback({**DEFAULT_PARAMS, **(params or {})}, hist)
    layout = ChannelLayout.from_history(hist)
    scaler = StoreScaler.from_history(hist, layout, p["target_level"])
    windows = _training_windows(_with_offsets(hist, p, stats), scaler, layout, p, with_validation=True)
    members, histories = [], []
    for member in range(int(p.get("n_seeds", 1))):
        pm = _member_params(p, member)
        keras.utils.set_random_seed(int(pm["seed"]))
        network = build_network(pm, layout.n_channels, _member_name(member))
        histories.append(_train(network, windows, pm, p["epochs"], float(p["learning_rate"])))
        members.append(network)
    return LSTMModel(params=p, network=seed_mean(members, "store_sales_lstm_seeds"), scaler=scaler, layout=layout,
                     train_start=windows.start, train_end=windows.end, history=histories, offset_stats=stats)


def refit(fitted: LSTMModel, full_df: pd.DataFrame, params: dict | None = None) -> LSTMModel:
    """Warm start: continue training ``fitted`` on the full history for ``refit_epochs`` epochs."""
    # the lookback stays the one the network was fitted with (lowered by _fitting_lookback on a short history)
    p = {**fitted.params, **(params or {}), "lookback_days": fitted.params["lookback_days"]}
    hist = _history_only(full_df)
    layout = fitted.layout  # the channels (and their scaling) the weights were trained on
    scaler = StoreScaler.from_history(hist, layout, p["target_level"])
    # the memory of the fit's statistics: a newer carnival cannot lie between its cut and a forecast's carnival
    # (folds and the plan are weeks apart, carnivals a year)
    hist = _with_offsets(hist, p, fitted.offset_stats)
    start, end = pd.Timestamp(hist["sale_date"].min()), pd.Timestamp(hist["sale_date"].max())
    windows = (_training_windows(hist, scaler, layout, p, with_validation=False) if int(p["refit_epochs"]) > 0
               else None)
    members, histories = [], []
    for member, trained in enumerate(seed_members(fitted.network)):  # each member continues on its own
        pm = _member_params(p, member)
        keras.utils.set_random_seed(int(pm["seed"]) + 1)
        network = build_network(pm, layout.n_channels, _member_name(member))
        network.set_weights(trained.get_weights())
        histories.append({} if windows is None else
                         _train(network, windows, pm, p["refit_epochs"], float(p["refit_learning_rate"])))
        members.append(network)
    return LSTMModel(params=p, network=seed_mean(members, "store_sales_lstm_seeds"), scaler=scaler, layout=layout,
                     train_start=start, train_end=end, history=histories, offset_stats=fitted.offset_stats)


def predict(fitted: LSTMModel, context_df: pd.DataFrame | None, target_df: pd.DataFrame,
            origins: pd.Series | None = None) -> pd.DataFrame:
    """Forecast ``target_df`` rows, each store from its forecast origin.

    The network reads the store's last ``lookback_days`` of ``context_df`` history before its origin, then only
    known covariates up to the store's last target day: the target's rows and, on days the target does not list,
    the context's rows (a target of one plan day still sees the plan's earlier days, as the forecast of the whole
    plan does). Context actuals on or after the origin are never read (no leakage from the target window).

    ``origins``: store_id -> origin, on or before each store's first target day (default: the earliest target
    date for every store: the batch forecast's one origin).
    """
    p = fitted.params
    lookback = int(p["lookback_days"])
    target = _with_offsets(target_df.reset_index(drop=True), p, fitted.offset_stats)
    if target.empty:
        return prediction_frame(target, np.zeros(0), np.zeros(0))
    tdates = pd.to_datetime(target["sale_date"])
    t_stores = target["store_id"].to_numpy()
    stores = np.unique(t_stores)
    origin = (pd.Series(tdates.min(), index=stores) if origins is None
              else pd.to_datetime(pd.Series(origins)).reindex(stores))
    steps = lookback + (tdates - origin.reindex(t_stores).to_numpy()).dt.days.to_numpy()  # index in its window
    if not (steps >= lookback).all():
        raise ValueError("lstm: a store's origin is after one of its target days (or it has no origin)")
    n_days = int(steps.max()) + 1
    history, known = (_with_offsets(rows, p, fitted.offset_stats)
                      for rows in _context_rows(context_df, target, origin, lookback))
    # One grid per distinct origin, every store's window starting lookback days before its own origin (so
    # step `lookback` is each store's first forecast day), all of the same length: one network call.
    grids = [build_grid(group.index.to_numpy(), day - pd.Timedelta(days=lookback), n_days, fitted.scaler,
                        fitted.layout, _of_stores(history, group.index),
                        future_rows=pd.concat([_of_stores(known, group.index), _of_stores(target, group.index)]),
                        future_from=day)
             for day, group in origin.groupby(origin)]
    grid_stores = np.concatenate([g.stores for g in grids])
    x = grids[0].x if len(grids) == 1 else np.concatenate([g.x for g in grids])
    raw = fitted.network.predict(_inputs(p, x, grid_stores), batch_size=512, verbose=0)  # [S, T, 2]
    sc = fitted.scaler.lookup(grid_stores)
    s_i = pd.Index(grid_stores).get_indexer(t_stores)
    ps = (raw[s_i, steps, 0] * sc["s_sd"].to_numpy()[s_i] + sc["s_mu"].to_numpy()[s_i]
          + fitted.scaler.sales_offset(t_stores, target["day_of_week"].to_numpy())
          + (target[EXTRA_SALES_OFFSET].to_numpy(float) if EXTRA_SALES_OFFSET in target.columns else 0.0))
    pc = raw[s_i, steps, 1] * sc["c_sd"].to_numpy()[s_i] + sc["c_mu"].to_numpy()[s_i]
    return prediction_frame(target, np.expm1(np.clip(ps, 0, 20)), np.expm1(np.clip(pc, 0, 20)))


def _context_rows(context_df: pd.DataFrame | None, target: pd.DataFrame, origin: pd.Series,
                  lookback: int) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The context's history rows of the lookback before each store's origin, and its rows from the origin on
    that no target row replaces (their covariates only); None where there are none."""
    if context_df is None or context_df.empty:
        return None, None
    row_origin = context_df["store_id"].map(origin)
    dates = pd.to_datetime(context_df["sale_date"])
    ctx = context_df.loc[(dates >= row_origin - pd.Timedelta(days=lookback)).to_numpy()]  # NaT (other stores): no
    before = (pd.to_datetime(ctx["sale_date"]) < row_origin.loc[ctx.index]).to_numpy()
    history = ctx.loc[before & (ctx["is_history"].to_numpy(bool) if "is_history" in ctx.columns else True)]
    after = ctx.loc[~before]
    targeted = pd.MultiIndex.from_arrays([after["store_id"].astype("int64"), pd.to_datetime(after["sale_date"])]).isin(
        pd.MultiIndex.from_arrays([target["store_id"].astype("int64"), pd.to_datetime(target["sale_date"])]))
    after = after.loc[~targeted]
    return (history if len(history) else None), (after if len(after) else None)


def _of_stores(rows: pd.DataFrame | None, stores: pd.Index) -> pd.DataFrame | None:
    return None if rows is None else rows.loc[rows["store_id"].isin(stores)]


def save(fitted: LSTMModel, directory: str | Path) -> Path:
    directory = Path(directory)
    path = directory / MODEL_FILE
    fitted.network.save(path)
    state = {k: getattr(fitted, k) for k in ["params", "scaler", "layout", "train_start", "train_end", "history",
                                             "offset_stats"]}
    joblib.dump(state, directory / STATE_FILE)
    return path


def load(directory: str | Path) -> LSTMModel:
    directory = Path(directory)
    network = keras.models.load_model(directory / MODEL_FILE, compile=False)
    state = joblib.load(directory / STATE_FILE)
    if "layout" not in state:
        raise ValueError(f"{directory}: an LSTM saved before its channel layout was recorded (issue 14); retrain it")
    return LSTMModel(network=network, **state)


class LSTMForecaster(BaseForecaster):
    """The protocol's face of this module: one global network, warm-started refits and backtest folds."""

    name = "lstm"
    default_params = DEFAULT_PARAMS
    fast_params = FAST_PARAMS
    supports_refit = True
    warm_start_folds = WARM_START_FOLDS

    def fit(self, history: pd.DataFrame, stats: StoreStats | None = None) -> LSTMForecaster:
        """The network scales each store itself; ``stats`` gives only the carnival memory (None: no memory)."""
        self.model = fit(history, self.params, stats)
        return self

    def refit(self, history: pd.DataFrame, **overrides) -> LSTMForecaster:
        """Continue training on ``history``; ``overrides`` (e.g. refit_epochs) apply to this refit only."""
        refitted = LSTMForecaster(self.params)
        refitted.model = refit(self.model, history, {**self.params, **overrides})
        return refitted

    def predict(self, context: pd.DataFrame | None, target: pd.DataFrame,
                origins: pd.Series | None = None) -> pd.DataFrame:
        """``origins``: each store's forecast origin (see :func:`predict`); default the earliest target date."""
        return predict(self.model, context, target, origins)

    def save(self, directory: str | Path) -> Path:
        return save(self.model, directory)

    @classmethod
    def load(cls, directory: str | Path) -> LSTMForecaster:
        model = load(directory)
        loaded = cls(model.params)
        loaded.model = model
        return loaded
