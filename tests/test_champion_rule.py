"""The champion rule end to end, and the error-analysis benchmarks' numbers against the platform's own.

On the warehouse the pipeline builds from synthetic data (the session fixture): dim_model_versions' weighted_rmspe
is the recency-weighted mean of ml.model_metrics with ForecastSpec's weights (the var reaches dbt), bench/errors.py's
SQL RMSPE is forecasting.metrics.rmspe's, and bench/champion_rule.py's blend refitted at the validation cut is the
platform's stored blend.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import yaml

from bench.champion_rule import blend_at_cut, member_rows
from bench.errors import DIMENSIONS, analyse, group_scores
from forecasting.blend import BLEND
from forecasting.folds import VALIDATION, ForecastSpec

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def con(pipeline_warehouse):
    with duckdb.connect(str(pipeline_warehouse.build_warehouse), read_only=True) as c:
        yield c


def _fold_rmspe(con) -> dict[tuple[str, str], dict[str, float]]:
    """(model, version) -> {split: rmspe} of ml.model_metrics' folds."""
    rows = con.execute("SELECT model, model_version, split, value FROM ml.model_metrics "
                       "WHERE metric = 'rmspe' AND (split = 'validation' OR split LIKE 'backtest_%')").fetchall()
    out: dict[tuple[str, str], dict[str, float]] = {}
    for model, version, split, value in rows:
        out.setdefault((model, version), {})[split] = value
    return out


def test_dbt_default_half_life_is_the_forecast_specs():
    """dbt runs without --vars (by hand, tests/test_dbt_models.py) rank the champion as the platform does."""
    project = yaml.safe_load((REPO / "dbt_project" / "dbt_project.yml").read_text())
    assert project["vars"]["champion_half_life_folds"] == ForecastSpec().champion_half_life_folds


def test_champion_has_the_lowest_recency_weighted_rmspe(con):
    versions = con.execute("SELECT model, model_version, mean_rmspe, weighted_rmspe, is_latest, is_champion, "
                           "champion_reason, champion_metric FROM marts.dim_model_versions").df()
    folds = _fold_rmspe(con)
    spec = ForecastSpec()
    for row in versions.itertuples():
        scores = folds[(row.model, row.model_version)]
        order = sorted((s for s in scores if s != VALIDATION), key=lambda s: int(s.split("_")[1])) + [VALIDATION]
        weights = spec.recency_weights(order)
        expected = sum(weights[s] * scores[s] for s in order) / sum(weights.values())
        assert row.weighted_rmspe == pytest.approx(expected, rel=1e-12)
        assert row.mean_rmspe == pytest.approx(sum(scores.values()) / len(scores), rel=1e-12)
    latest = versions.loc[versions["is_latest"]]
    champion = versions.loc[versions["is_champion"]].iloc[0]
    assert champion["weighted_rmspe"] == latest["weighted_rmspe"].min()
    assert (champion["champion_reason"], champion["champion_metric"]) == ("lowest weighted_rmspe", "weighted_rmspe")


def test_error_analysis_rmspe_is_the_platforms(con):
    result = analyse(con)
    assert BLEND in result["models"] and result["champion"] in result["models"]
    versions = con.execute("SELECT model, model_version FROM marts.dim_model_versions WHERE is_latest").fetchall()
    folds = _fold_rmspe(con)
    table = result["tables"]["fold x model"].set_index("split")
    for model, version in versions:
        for split, value in folds[(model, version)].items():
            assert table.at[split, f"RMSPE {model}"] == pytest.approx(value, rel=1e-9), (model, split)
    # every group table splits each fold's squared error completely, whatever the dimension
    for sql in DIMENSIONS.values():
        shares = group_scores(con, sql).groupby(["split", "model"])["sq_error_share"].sum()
        assert shares.to_numpy() == pytest.approx(1.0)
    worst = result["tables"]["worst 15 stores"]
    assert worst.groupby("split").size().max() <= 15


def test_champion_rule_blend_at_the_validation_cut_is_the_platforms(con):
    """The benchmark's blend, refitted on the folds before the validation fold with the platform's half-life, is the
    blend the pipeline stored for that fold (its weights came from the same folds with the same weights)."""
    analyse(con)  # loads the scored fold rows
    preds, splits = member_rows(con)
    window, cut = splits[:-1], splits[-1]
    window_preds = {n: p.loc[p["split"].isin(window)].reset_index(drop=True) for n, p in preds.items()}
    future = {n: p.loc[p["split"] == cut].reset_index(drop=True) for n, p in preds.items()}
    _, rmspe_at_cut = blend_at_cut(window_preds, future, window, ForecastSpec().champion_half_life_folds)
    stored = con.execute("SELECT m.value FROM ml.model_metrics m JOIN marts.dim_model_versions v "
                         "USING (model, model_version) WHERE v.is_latest AND m.model = ? AND m.split = ? "
                         "AND m.metric = 'rmspe'", [BLEND, cut]).fetchone()[0]
    assert rmspe_at_cut == pytest.approx(stored, rel=1e-9)
