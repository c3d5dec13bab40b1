"""Rolling-origin folds, leakage, conformal intervals, the blend, diagnostics and explanations (tiny data)."""

import duckdb
import numpy as np
import pandas as pd
import pytest

from analytics.charts import forecast_vs_actual_markdown, importance_chart_markdown
from analytics.diagnostics import DIAGNOSTIC_COLUMNS, acf_by_store, series_diagnostics
from forecasting.blend import blend_backtest, blend_weights, fit_blend
from forecasting.features import extra_feature_columns, history_rows, prepare_frame
from forecasting.folds import VALIDATION, ForecastSpec, fold_frames, make_folds
from forecasting.importance import combine_permuted, importance_from_permuted, permuted_predictions
from forecasting.intervals import (
    SPREAD,
    SPREAD_FLOOR,
    add_fold_intervals,
    apply_factors,
    conformal_factors,
    member_spread,
)
from forecasting.metrics import fold_metrics
from forecasting.models.baseline import BaselineForecaster
from forecasting.protocol import create
from forecasting.runner import FOLD_COLUMNS, run_backtest, train
from warehouse.writeback import write_model_outputs
from test_models import fit, make_frame, store_stats_table  # tests/ is on sys.path (rootdir-relative, no package)

H = 42


@pytest.fixture(scope="module")
def frame():
    return prepare_frame(make_frame(n_stores=4, n_days=220))


@pytest.fixture(scope="module")
def hist(frame):
    return history_rows(frame)


def test_folds_end_with_the_last_42_days(hist):
    folds = make_folds(hist, 3, H)
    assert [f.split for f in folds] == ["backtest_1", "backtest_2", VALIDATION]
    last = hist["sale_date"].max()
    assert folds[-1].end == last and folds[-1].cutoff == last - pd.Timedelta(days=H)
    for a, b in zip(folds, folds[1:]):
        assert b.cutoff == a.end and (b.end - b.cutoff).days == H
    train, target = fold_frames(hist, folds[0])
    assert train["sale_date"].max() == folds[0].cutoff < target["sale_date"].min()
    assert target["sale_date"].nunique() == H


def test_short_history_gets_fewer_folds_never_a_different_window(hist):
    short = hist.loc[hist["sale_date"] > hist["sale_date"].max() - pd.Timedelta(days=150)]
    folds = make_folds(short, 3, H)
    assert [f.split for f in folds] == ["backtest_1", VALIDATION]
    assert folds[-1].end == short["sale_date"].max()
    with pytest.raises(ValueError):
        make_folds(hist.loc[hist["sale_date"] > hist["sale_date"].max() - pd.Timedelta(days=60)], 3, H)


class Spy(BaselineForecaster):
    """The baseline, recording the training data each fit saw (class-level: every fold fits a new instance)."""

    name = "spy"
    seen: list = []

    def fit(self, train, stats):
        Spy.seen.append((train["sale_date"].max(), train["sales"].sum(), stats.feature_cut_date))
        return super().fit(train, stats)

    def predict(self, context, target):
        assert context["sale_date"].max() < target["sale_date"].min()
        return super().predict(context, target)


def test_each_fold_fits_only_on_data_before_its_cut(hist):
    folds = make_folds(hist, 3, H)
    Spy.seen = []
    res = run_backtest(Spy(), hist, folds, store_stats_table(hist))
    assert [s[0] for s in Spy.seen] == [f.cutoff for f in folds]
    assert [s[2] for s in Spy.seen] == [f.start for f in folds]  # each fold gets the statistics of its own cut
    assert list(dict.fromkeys(res.predictions["split"])) == [f.split for f in folds]
    assert list(res.predictions.columns) == FOLD_COLUMNS
    # changing actuals inside a fold's window does not change that fold's forecast
    poisoned = hist.copy()
    inside = poisoned["sale_date"] > folds[-1].cutoff
    poisoned.loc[inside, "sales"] *= 10
    again = run_backtest(Spy(), poisoned, folds, store_stats_table(poisoned))
    v = res.predictions["split"] == VALIDATION
    np.testing.assert_allclose(res.predictions.loc[v, "sales_pred"], again.predictions.loc[v, "sales_pred"])


def _fake_preds(n_folds=3, n=600, noise=0.1, seed=0, bias=1.0):
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n_folds):
        a = rng.uniform(2000, 8000, n)
        rows.append(pd.DataFrame({
            "split": VALIDATION if k == n_folds - 1 else f"backtest_{k + 1}",
            "store_id": np.arange(n) % 10 + 1, "sale_date": pd.Timestamp("2015-01-01") + pd.to_timedelta(np.arange(n) % 42, "D"),
            "horizon_day": np.arange(n) % 42, "is_open": True, "sales": a, "customers": a / 9,
            "sales_pred": a * bias * np.exp(rng.normal(0, noise, n)), "customers_pred": a / 9}))
    return pd.concat(rows, ignore_index=True)


def test_conformal_intervals_cover_about_80_percent_and_never_use_the_own_fold():
    pred = _fake_preds(noise=0.1)
    out = add_fold_intervals(pred, 0.8, 6)
    m = fold_metrics(out, "coverage_80")
    cov = m.loc[m["metric"] == "coverage_80", "value"]
    assert ((cov > 0.72) & (cov < 0.88)).all()
    # a fold's interval does not change when its own residuals change
    changed = pred.copy()
    v = changed["split"] == VALIDATION
    changed.loc[v, "sales"] *= np.exp(np.random.default_rng(1).normal(0, 1.0, v.sum()))
    again = add_fold_intervals(changed, 0.8, 6)
    np.testing.assert_allclose(out.loc[v, "sales_upper"], again.loc[v, "sales_upper"])
    f = conformal_factors(pred, 0.8, 6)
    assert (f["lower_factor"] <= 1).all() and (f["upper_factor"] >= 1).all() and len(f) == 6
    # the level is a parameter: a wider interval at 95%
    assert (conformal_factors(pred, 0.95, 6)["upper_factor"] > f["upper_factor"]).all()


def test_member_spread_is_the_weighted_disagreement_of_the_members():
    one, two = np.log([100.0, 100.0, 100.0]), np.log([100.0, 200.0, np.nan])
    np.testing.assert_allclose(member_spread([one, two], [1, 1]), [0, np.log(2) / 2, 0])  # no forecast: 0
    np.testing.assert_allclose(member_spread([one, two], [1, 0]), 0)  # a member of weight 0 does not count
    assert member_spread([one, two], [3, 1])[1] == pytest.approx(np.sqrt(0.75 * 0.25) * np.log(2))


def test_blend_intervals_widen_where_the_members_disagree():
    """Hard rows (a third): large errors, and the members disagree there.  A fixed-width interval misses many hard
    rows and covers nearly every calm one; scaled by the members' spread (plus its floor) it covers most of each."""
    base = _fake_preds(noise=0.0, seed=6)
    rng = np.random.default_rng(7)
    hard = np.arange(len(base)) % 3 == 0
    truth = base["sales"] * np.exp(rng.normal(0, np.where(hard, 0.25, 0.04)))
    gap = np.where(hard, 0.2, 0.01) * rng.choice([-1, 1], len(base))
    preds = {name: base.assign(sales=truth, sales_pred=base["sales"] * np.exp(sign * gap))
             for name, sign in (("up", 1), ("down", -1))}
    blended, _ = blend_backtest(preds, ForecastSpec())
    assert blended[SPREAD].to_numpy()[hard].mean() > 5 * blended[SPREAD].to_numpy()[~hard].mean()
    fixed = add_fold_intervals(blended.drop(columns=SPREAD), 0.8, 6)

    def coverage(frame, rows):
        return float(frame["sales"].between(frame["sales_lower"], frame["sales_upper"])[rows].mean())

    assert coverage(fixed, hard) < 0.65 and coverage(fixed, ~hard) > 0.95
    assert 0.8 < coverage(blended, hard) < 0.95 and 0.65 < coverage(blended, ~hard) < 0.9
    factors = conformal_factors(blended, 0.8, 6)
    assert factors[SPREAD_FLOOR].iloc[0] > 0
    with pytest.raises(ValueError, match="member_spread"):
        apply_factors([100.0], [0], factors)
    lower, upper = apply_factors([100.0, 100.0], [0, 0], factors, spread=[0.0, 0.3])
    assert upper[1] - lower[1] > upper[0] - lower[0] > 0


def test_blend_weights_fix_bias_and_prefer_the_better_model():
    good = _fake_preds(noise=0.05, seed=0, bias=0.95)
    bad = good.assign(sales_pred=good["sales"] * np.exp(np.random.default_rng(3).normal(0, 0.3, len(good))))
    w = blend_weights({"good": good, "bad": bad})
    assert w["good"] > 0.8 and w["bad"] < 0.2
    blended, per_fold = blend_backtest({"good": good, "bad": bad}, ForecastSpec())
    assert set(per_fold) == {"backtest_1", "backtest_2", VALIDATION}
    m = fold_metrics(blended)
    g = fold_metrics(good)
    assert m.loc[m["metric"] == "rmspe", "value"].mean() < g.loc[g["metric"] == "rmspe", "value"].mean()


def test_recency_weights_halve_every_half_life_back_from_the_latest_fold():
    splits = ["backtest_1", "backtest_2", "backtest_3", VALIDATION]
    assert ForecastSpec(champion_half_life_folds=1).recency_weights(splits) == {
        "backtest_1": 0.125, "backtest_2": 0.25, "backtest_3": 0.5, VALIDATION: 1.0}
    assert ForecastSpec(champion_half_life_folds=2).recency_weights(splits[-3:])["backtest_2"] == 0.5
    assert ForecastSpec().dbt_vars()["champion_half_life_folds"] == ForecastSpec().champion_half_life_folds
    with pytest.raises(ValueError):
        ForecastSpec(champion_half_life_folds=0)


def _drifting_members():
    """"old" is accurate on the first two folds and noisy on the validation fold; "new" the other way round."""
    base = _fake_preds(noise=0.0, seed=4)
    latest = (base["split"] == VALIDATION).to_numpy()
    rng = np.random.default_rng(5)
    noise = {name: np.exp(rng.normal(0, 1, len(base)) * np.where(latest == (name == "new"), 0.02, 0.3))
             for name in ("new", "old")}
    return {name: base.assign(sales_pred=base["sales"] * noise[name]) for name in ("new", "old")}, latest


def test_blend_weights_follow_the_recent_folds_as_the_champion_rule_does():
    preds, latest = _drifting_members()
    splits = ["backtest_1", "backtest_2", VALIDATION]
    alike = blend_weights(preds)
    recent = blend_weights(preds, recency=ForecastSpec(champion_half_life_folds=1).recency_weights(splits))
    # every row alike: two folds favour "old"; weighted 0.25 / 0.5 / 1: the validation fold outweighs them
    assert alike["old"] > alike["new"] and recent["new"] > recent["old"]
    # a fold of weight 0 does not count at all
    assert blend_weights(preds, recency={"backtest_1": 0.0, "backtest_2": 0.0, VALIDATION: 1.0}) == \
        pytest.approx(blend_weights(preds, latest))


def test_blend_backtest_weighs_the_other_folds_and_never_its_own():
    preds, _ = _drifting_members()
    _, per_fold = blend_backtest(preds, ForecastSpec(champion_half_life_folds=1))
    # the validation fold's weights come from backtest_1 and _2 only, where "old" is right
    assert per_fold[VALIDATION]["old"] > 0.9 and per_fold[VALIDATION]["new"] < 0.1
    # backtest_1's from backtest_2 (weight 0.5) and validation (1): "new" leads
    assert per_fold["backtest_1"]["new"] > per_fold["backtest_1"]["old"]
    # a very long half-life is the unweighted fit of before
    _, alike = blend_backtest(preds, ForecastSpec(champion_half_life_folds=1e9))
    rows = (preds["new"]["split"] == "backtest_1").to_numpy()
    assert alike["backtest_1"] == pytest.approx(blend_weights(preds, ~rows))


def test_blend_of_trained_models_and_writeback(frame, tmp_path):
    members = {}
    for name in ("baseline", "hist_gradient_boosting"):
        tm = train(create(name, profile="fast"), frame, store_stats_table(frame))
        members[name] = {"backtest": tm.backtest, "forecast": tm.forecast, "registry": tm.registry_frame(),
                         "metrics": tm.metrics}
    bl = fit_blend(members)
    assert set(bl.forecaster.params["weights"]) == set(members)
    assert len(bl.forecast) == len(members["baseline"]["forecast"])
    assert (bl.forecast["sales_lower"] <= bl.forecast["sales_pred"]).all()
    assert (bl.forecast["sales_pred"] <= bl.forecast["sales_upper"]).all()
    assert set(bl.metrics["split"]) == {"backtest_1", "backtest_2", VALIDATION}
    metrics = pd.concat([*(m["metrics"] for m in members.values()), bl.metrics], ignore_index=True)
    bl.registry["artifact_path"] = str(tmp_path)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    counts = write_model_outputs(con, forecasts=pd.concat([*(m["forecast"] for m in members.values()), bl.forecast]),
                                 metrics=metrics,
                                 registry=pd.concat([*(m["registry"].assign(artifact_path=str(tmp_path))
                                                     for m in members.values()), bl.registry_frame()]))
    assert counts["model_registry"] == 3
    assert con.execute("SELECT count(DISTINCT model) FROM ml.store_sales_forecast").fetchall() == [(3,)]
    # a member that only forecast this run brings its registry row as read from the warehouse (Timestamps, where a
    # refit member's row has dates): the blend takes both
    read_back = con.execute("SELECT * FROM ml.model_registry WHERE model = 'baseline'").df()
    fresh = members["hist_gradient_boosting"]["registry"]
    assert type(read_back["train_end"].iloc[0]) is not type(fresh["train_end"].iloc[0])
    mixed = fit_blend({**members, "baseline": {**members["baseline"], "registry": read_back}})
    assert (mixed.registry["train_start"], mixed.registry["train_end"]) == (bl.registry["train_start"],
                                                                          bl.registry["train_end"])


def test_series_diagnostics(hist):
    d = series_diagnostics(hist)
    assert list(d.columns) == DIAGNOSTIC_COLUMNS
    assert len(d) == hist["store_id"].nunique()
    assert d["adf_pvalue"].between(0, 1).all()
    x = np.sin(np.arange(400) * 2 * np.pi / 7)[None, :].repeat(2, axis=0)
    x[1, ::5] = np.nan
    acf = acf_by_store(x, (7,))
    np.testing.assert_allclose(acf[7], 1.0, atol=1e-3)


def test_permutation_importance_and_charts(frame, hist):
    folds = make_folds(hist, 3, H)
    train, target = fold_frames(hist, folds[-1])
    fitted = fit("hist_gradient_boosting", train, table=store_stats_table(hist))
    hgb = permuted_predictions(fitted, train, target)
    imp = importance_from_permuted(hgb)
    assert {"store_id", "is_promo", "day_of_week"} <= set(imp["feature"])
    assert imp.iloc[0]["importance"] > 0
    # the blend's importance: its members' shuffled forecasts on the same rows, weighted as the blend weighs them
    base_fit = fit("baseline", train, table=store_stats_table(hist))
    base = permuted_predictions(base_fit, train, target, features=["is_promo", "day_of_week"])
    only_hgb = importance_from_permuted(combine_permuted({"h": hgb, "b": base}, {"h": 1.0, "b": 0.0}))
    pd.testing.assert_frame_equal(only_hgb, imp, check_exact=False, atol=1e-6)
    mixed = combine_permuted({"h": hgb, "b": base}, {"h": 0.5, "b": 0.5})
    np.testing.assert_allclose(mixed["row_forecast"], 0.5 * hgb["row_forecast"] + 0.5 * base["row_forecast"], rtol=1e-6)
    # a feature the baseline does not shuffle (state_holiday) counts as its unshuffled forecast
    np.testing.assert_allclose(mixed["state_holiday"], 0.5 * hgb["state_holiday"] + 0.5 * base["row_forecast"], rtol=1e-6)
    md = importance_chart_markdown(imp, "t")
    assert md.startswith("![t](data:image/png;base64,")
    val = target.assign(sales_pred=target["sales"], sales_lower=target["sales"] * 0.9, sales_upper=target["sales"] * 1.1)
    assert "data:image/png;base64," in forecast_vs_actual_markdown(val, "v", 0.8)


def test_extra_mart_columns_are_used_when_present_and_sales_columns_never(frame):
    f = frame.copy()
    f["days_to_easter"] = (f["sale_date"] - pd.Timestamp("2015-04-05")).dt.days.clip(-30, 30)
    f["state_group"] = np.where(f["store_id"] % 2 == 0, "g1", "g2")
    f["store_sales_rolling_mean"] = 1.0
    extra = extra_feature_columns(f)
    assert extra == {"numeric": ["days_to_easter"], "categorical": ["state_group"]}
    h = history_rows(f)
    for name in ("random_forest", "hist_gradient_boosting"):
        fitted = fit(name, h, table=store_stats_table(h))
        cols = fitted.numeric + fitted.categorical
        assert "days_to_easter" in cols and "state_group" in cols and "store_sales_rolling_mean" not in cols
        p = fitted.predict(h, f.loc[~f["is_history"]])
        assert p["sales_pred"].notna().all()
