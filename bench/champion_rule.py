"""Champion rule benchmark (issue 14): which way of scoring the folds picks the model that is best afterwards.

A benchmark, not a test (pytest does not collect it).  Every fold k in turn plays "the future": a rule chooses among
the models using only the ``--window`` folds before k (the platform's ``n_folds``: those folds are what it would
have had at that cut), and the rule's pick is compared with the best candidate on fold k.  Candidates are the
member models (each model's latest version's fold rows, as ``bench/errors.py`` reads them) and the blend, refitted
for every cut on the window's folds only with the platform's own code (``forecasting.blend``): its score on a
window fold comes from weights fitted on the window's other folds, its fold-k forecast from weights fitted on the
whole window -- what the platform's blend would have forecast at that cut.  The stored blend rows are not used (a
backtest fold's blend was fitted on later folds too).

Rules: the mean over the window (the rule until issue 14), the last fold, the last two folds, and weighted means
with weights halving every h folds back (``ForecastSpec.recency_weights``).  The candidate blend's fold weights are
the platform's (``--blend-half-life``; 0: every fold alike).  Last table: the blend's RMSPE on fold k when its
weights are fitted with every fold alike or with each half-life's weights.

    .venv/bin/python bench/champion_rule.py --warehouse bench/results/real-warehouse.duckdb
    .venv/bin/python bench/champion_rule.py --warehouse W --artifacts ACCURACY_WORK_DIR/models --window 3 4
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.errors import load_fold_rows, markdown  # noqa: E402
from forecasting.blend import BLEND, blend_backtest, blend_weights, combine  # noqa: E402
from forecasting.folds import ForecastSpec  # noqa: E402
from forecasting.metrics import fold_metrics, rmspe  # noqa: E402

HALF_LIVES = (0.5, 1.0, 2.0)
Rule = Callable[[list[str]], dict[str, float]]  # window folds (oldest first) -> weight per fold


def rules(half_lives: tuple[float, ...] = HALF_LIVES) -> dict[str, Rule]:
    """The candidate rules, as fold weights over the window (the score is the weighted mean RMSPE)."""
    out: dict[str, Rule] = {
        "mean of all folds": lambda splits: dict.fromkeys(splits, 1.0),
        "last fold": lambda splits: {s: float(i == len(splits) - 1) for i, s in enumerate(splits)},
        "last two folds": lambda splits: {s: float(i >= len(splits) - 2) for i, s in enumerate(splits)},
    }
    for h in half_lives:
        out[f"half-life {h:g} folds"] = ForecastSpec(champion_half_life_folds=h).recency_weights
    return out


def member_rows(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Each member model's scored fold rows (``load_fold_rows``'s), aligned, in the runner's fold-row names; and
    the folds oldest first."""
    frame = con.execute("""
        SELECT model, split, store_id, forecast_date AS sale_date, horizon_day - 1 AS horizon_day,
               true AS is_open, actual_sales AS sales, NULL::DOUBLE AS customers, sales_pred,
               NULL::DOUBLE AS customers_pred
        FROM scored JOIN folds USING (split)
        WHERE model <> $blend
        ORDER BY model, fold_index, store_id, forecast_date""", {"blend": BLEND}).df()
    preds = {m: g.drop(columns="model").reset_index(drop=True) for m, g in frame.groupby("model")}
    splits = [s for (s,) in con.execute("SELECT split FROM folds ORDER BY fold_index").fetchall()]
    keys = ["split", "store_id", "sale_date"]
    first = next(iter(preds.values()))[keys]
    for name, p in preds.items():
        if not p[keys].equals(first):
            raise SystemExit(f"the fold rows of {name} differ from the other models': compare versions trained "
                             "on the same folds")
    return preds, splits


def _subset(preds: dict[str, pd.DataFrame], splits: list[str]) -> dict[str, pd.DataFrame]:
    return {n: p.loc[p["split"].isin(splits)].reset_index(drop=True) for n, p in preds.items()}


def blend_at_cut(window_preds: dict[str, pd.DataFrame], future: dict[str, pd.DataFrame], window: list[str],
                 half_life: float | None) -> tuple[dict[str, float], float]:
    """The blend as the platform fits it on the window's folds (fold weights of ``half_life``; None: every fold
    alike): its RMSPE on each window fold (weights from the other window folds) and on the future fold."""
    spec = ForecastSpec(n_folds=len(window),
                        champion_half_life_folds=np.inf if half_life is None else half_life)
    backtest, _ = blend_backtest(window_preds, spec)
    scores = fold_metrics(backtest).query("metric == 'rmspe'").set_index("split")["value"].to_dict()
    weights = blend_weights(window_preds, recency=spec.recency_weights(window))
    base = next(iter(future.values()))
    return scores, rmspe(base["sales"], combine(future, weights)["sales_pred"], base["is_open"])


def evaluate(preds: dict[str, pd.DataFrame], splits: list[str], window: int, first_cut: int,
             candidate_rules: dict[str, Rule], blend_half_life: float | None
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per cut (fold ``first_cut`` on, 0-based): every rule's pick among the members and the blend fitted with
    ``blend_half_life`` (None: every fold alike), and its loss to the best of them on the future fold; and the
    blend's future RMSPE with every fold alike or with each half-life's weights."""
    member_scores = {n: fold_metrics(p).query("metric == 'rmspe'").set_index("split")["value"]
                     for n, p in preds.items()}
    picks, blends = [], []
    for k in range(first_cut, len(splits)):
        folds_before, cut = splits[k - window:k], splits[k]
        window_preds, future = _subset(preds, folds_before), _subset(preds, [cut])
        blend_scores, blend_future = blend_at_cut(window_preds, future, folds_before, blend_half_life)
        scores = pd.DataFrame({n: s[folds_before] for n, s in member_scores.items()} | {BLEND: blend_scores})
        outcome = {n: float(s[cut]) for n, s in member_scores.items()} | {BLEND: blend_future}
        best = min(outcome, key=outcome.get)
        row = {"future fold": cut, "window": f"{folds_before[0]}..{folds_before[-1]}", "best": best,
               "best RMSPE": outcome[best], **{f"RMSPE {n}": v for n, v in sorted(outcome.items())}}
        for name, rule in candidate_rules.items():
            w = pd.Series(rule(folds_before))
            score = scores.loc[folds_before].mul(w, axis=0).sum() / w.sum()
            pick = str(score.idxmin())
            row[name] = pick
            row[f"{name} loss"] = outcome[pick] - outcome[best]
        picks.append(row)
        blend_row = {"future fold": cut, "blend, folds alike": blend_at_cut(window_preds, future, folds_before,
                                                                          None)[1]}
        for h in HALF_LIVES:
            blend_row[f"blend, half-life {h:g}"] = blend_at_cut(window_preds, future, folds_before, h)[1]
        blends.append(blend_row)
    return pd.DataFrame(picks), pd.DataFrame(blends)


def compact(picks: pd.DataFrame, candidate_rules: dict[str, Rule]) -> pd.DataFrame:
    """The per-cut table for reading: each rule's pick with its loss in one cell."""
    out = picks[["future fold", "window", "best", "best RMSPE"]].copy()
    for name in candidate_rules:
        loss = picks[f"{name} loss"]
        out[name] = picks[name].where(loss == 0, picks[name] + loss.map(lambda x: f" +{x:.4f}"))
    return out


def summary(picks: pd.DataFrame, candidate_rules: dict[str, Rule]) -> pd.DataFrame:
    """Per rule: how often its pick was the best on the future fold, and its mean and largest loss."""
    return pd.DataFrame([{
        "rule": name, "cuts": len(picks), "picked the best": int((picks[f"{name} loss"] == 0).sum()),
        "mean loss (RMSPE)": picks[f"{name} loss"].mean(), "largest loss": picks[f"{name} loss"].max(),
        # relative to the best, so that one hard future fold (Christmas) does not decide alone
        "mean loss %": 100 * (picks[f"{name} loss"] / picks["best RMSPE"]).mean(),
        "mean RMSPE of its picks": (picks["best RMSPE"] + picks[f"{name} loss"]).mean(),
    } for name in candidate_rules])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warehouse", type=Path, required=True, help="as for bench/errors.py")
    ap.add_argument("--artifacts", type=Path, help="as for bench/errors.py: an accuracy run's models folder")
    ap.add_argument("--models", nargs="+", help="member models (default: every model with fold rows but the blend)")
    ap.add_argument("--window", type=int, nargs="+", default=[2],
                    help="folds a rule may look at before each cut, i.e. the platform's n_folds (default 2: all "
                         "that a 3-fold run has before its last fold); several values: one table each")
    ap.add_argument("--blend-half-life", type=float, default=ForecastSpec().champion_half_life_folds,
                    help="the candidate blend's fold weights (default: the platform's ForecastSpec; 0: every fold "
                         "alike, as before issue 14)")
    ap.add_argument("--out", type=Path, help="JSON file (default bench/results/champion_rule-<UTC time>.json)")
    args = ap.parse_args(argv)
    with duckdb.connect(str(args.warehouse), read_only=True) as con:
        load_fold_rows(con, args.models, args.artifacts)
        preds, splits = member_rows(con)
    candidate_rules = rules()
    blend_fit = f"half-life {args.blend_half_life:g} folds" if args.blend_half_life else "every fold alike"
    print(f"folds (oldest first): {', '.join(splits)}; members: {', '.join(preds)} (+ the blend refitted per cut, "
          f"fold weights: {blend_fit}). Loss = the pick's RMSPE on the future fold minus the best candidate's.")
    # every window on the same cuts, so the tables compare
    first_cut = max(args.window)
    if first_cut >= len(splits):
        raise SystemExit(f"a window of {first_cut} folds needs more than {first_cut} folds; the data have "
                         f"{len(splits)}")
    result = {}
    for window in args.window:
        picks, blends = evaluate(preds, splits, window, first_cut, candidate_rules, args.blend_half_life or None)
        table = summary(picks, candidate_rules)
        print(f"\n## window of {window} folds before each cut\n\n{markdown(table)}\n\n"
              f"{markdown(compact(picks, candidate_rules))}\n\nRMSPE on the future fold:\n\n"
              f"{markdown(picks.filter(regex='^(future fold|RMSPE )'))}\n\n"
              f"The blend's RMSPE on the future fold by how its weights were fitted:\n\n{markdown(blends)}")
        result[window] = {name: frame.to_dict(orient="records")
                          for name, frame in (("summary", table), ("picks", picks), ("blend", blends))}
    out = args.out or REPO / "bench" / "results" / f"champion_rule-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"warehouse": str(args.warehouse), "artifacts": str(args.artifacts or ""),
                               "blend_half_life": args.blend_half_life,
                               "splits": splits, "members": list(preds), "windows": result}, indent=2, default=str))
    print(f"\nwritten {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
