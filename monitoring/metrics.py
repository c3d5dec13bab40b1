"""The pipeline's run metrics as a Prometheus textfile (``DATA_DIR/metrics/pipeline.prom``), for node_exporter's
textfile collector or any scrape that reads the file: the API's own metrics are in :mod:`serving.api.observe`.

The orchestration calls :func:`write_pipeline_textfile` at the end of each run (success or failure); the alert
rules in ``deploy/prometheus/alert_rules.yml`` read ``pipeline_champion_rmspe`` for accuracy degradation.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

TEXTFILE = Path("metrics") / "pipeline.prom"  # under DATA_DIR


def write_pipeline_textfile(path: str | os.PathLike, *, run_id: str, succeeded: bool, duration_s: float,
                            rows: Mapping[str, int], model_metrics: Iterable[tuple[str, str, str, float]] = (),
                            champion: str | None = None, finished_at: float | None = None) -> Path:
    """Write one run's metrics to ``path`` (atomically: a scrape never reads half a file). ``rows``: table ->
    rows written; ``model_metrics``: (model, split, metric, value) of the versions just trained; ``champion``: the
    champion model, whose validation RMSPE becomes ``pipeline_champion_rmspe``."""
    registry = CollectorRegistry()
    labels = {"run_id": run_id}
    Gauge("pipeline_last_run_timestamp_seconds", "When the last pipeline run finished (Unix time)", list(labels),
          registry=registry).labels(**labels).set(finished_at if finished_at is not None else time.time())
    Gauge("pipeline_last_run_success", "1 when the last run succeeded (and published), else 0", list(labels),
          registry=registry).labels(**labels).set(1 if succeeded else 0)
    Gauge("pipeline_run_duration_seconds", "Duration of the last pipeline run", list(labels),
          registry=registry).labels(**labels).set(duration_s)
    table_rows = Gauge("pipeline_table_rows", "Rows of each table the last run wrote", ["table"], registry=registry)
    for table, n in rows.items():
        table_rows.labels(table=table).set(n)
    metric = Gauge("pipeline_model_metric", "Validation and backtest metrics of the last run's model versions",
                   ["model", "split", "metric"], registry=registry)
    champion_rmspe = None
    for model, split, name, value in model_metrics:
        metric.labels(model=model, split=split, metric=name).set(value)
        if model == champion and split == "validation" and name == "rmspe":
            champion_rmspe = value
    if champion_rmspe is not None:
        Gauge("pipeline_champion_rmspe", "Validation RMSPE of the champion model", ["model"],
              registry=registry).labels(model=champion).set(champion_rmspe)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
    return path
