"""The served champion: a person's pin (or unpin), and the history of every change (warehouse/champion.py).

`ml/champion_pins` runs in every pipeline run with the default config (`action: keep`, no change) and in the
`set_champion` job with `pin` or `unpin`; dbt's `marts.dim_model_versions` reads the pin, and
`ml/champion_history` then records what the rebuilt marts serve.
"""

from typing import Literal

from dagster import AssetExecutionContext, AssetKey, Config, Failure, MaterializeResult, asset

from orchestration.assets.metadata import DATA_SCIENCE, ROW_COUNT
from orchestration.resources import DuckDBWarehouse
from warehouse.champion import ChampionError, current_pin, pin, record_promotion, unpin

PINS_KEY = AssetKey(["ml", "champion_pins"])
HISTORY_KEY = AssetKey(["ml", "champion_history"])
CHAMPION_MODELS_KEY = AssetKey(["marts", "dim_model_versions"])


class ChampionPinConfig(Config):
    """`pin` serves `model` `model_version` as the champion until `unpin`; `keep` changes nothing."""

    action: Literal["keep", "pin", "unpin"] = "keep"
    model: str = ""
    model_version: str = ""
    reason: str = ""
    requested_by: str = ""


@asset(key=PINS_KEY, group_name="ml", kinds={"duckdb"}, owners=DATA_SCIENCE,
       # after the raw load, so a run whose input is refused materializes nothing (a dependency on the ml tables
       # would split the dbt forecast marts into several steps); the set_champion job runs it alone
       deps=[AssetKey(["raw", "sales"])],
       description="The pinned champion version (at most one row; empty: the lowest recency-weighted mean backtest RMSPE wins). "
                   "Changed by the set_champion job or `python -m orchestration.champion pin|unpin`.")
def champion_pins(context: AssetExecutionContext, config: ChampionPinConfig,
                  warehouse: DuckDBWarehouse) -> MaterializeResult:
    by = config.requested_by or f"run {context.run_id}"
    with warehouse.connect() as con:
        try:
            if config.action == "pin":
                if not (config.model and config.model_version):
                    raise ChampionError("pin needs a model and a model_version")
                before = pin(con, config.model, config.model_version, reason=config.reason or "pinned by hand",
                             by=by, run_id=context.run_id)
                context.log.info(f"pinned {config.model} {config.model_version} (champion was "
                                 f"{before.model + ' ' + before.model_version if before else 'none'})")
            elif config.action == "unpin":
                removed = unpin(con, reason=config.reason or "unpinned by hand", by=by, run_id=context.run_id)
                context.log.info(f"unpinned {removed[0]} {removed[1]}")
        except ChampionError as exc:
            raise Failure(description=str(exc)) from exc
        pinned = current_pin(con)
    return MaterializeResult(metadata={ROW_COUNT: int(pinned is not None),
                                       "pinned": " ".join(pinned) if pinned else "(none: the rule decides)"})


@asset(key=HISTORY_KEY, deps=[PINS_KEY, CHAMPION_MODELS_KEY], group_name="ml", kinds={"duckdb"},
       owners=DATA_SCIENCE,
       description="Every change of the served champion: automatic promotions, pins and unpins; when, what, from, "
                   "to, why and who.")
def champion_history(context: AssetExecutionContext, warehouse: DuckDBWarehouse) -> MaterializeResult:
    with warehouse.connect() as con:
        promoted = record_promotion(con, context.run_id)
        n_rows = con.execute("SELECT count(*) FROM ml.champion_history").fetchone()[0]
    if promoted:
        context.log.info(f"champion is now {promoted.model} {promoted.model_version}")
    return MaterializeResult(metadata={ROW_COUNT: n_rows, "promoted": (
        f"{promoted.model} {promoted.model_version}" if promoted else "(no change)")})
