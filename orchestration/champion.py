"""Pin, unpin and show the served champion from the command line: runs the `set_champion` job (pin, rebuild the forecast
marts that follow it, publish) in process on the same Dagster instance as `make run`.

    python -m orchestration.champion show
    python -m orchestration.champion pin lstm 20261127T101500123456Z --reason "holiday season" [--by alice]
    python -m orchestration.champion unpin --reason "back to the rule"
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import sys
from datetime import datetime, timezone

import duckdb
from dagster import DagsterInstance

from orchestration.definitions import defs
from orchestration.run import failure_message
from settings import Settings, configure_logging


def _show(settings: Settings) -> int:
    if not settings.build_warehouse.exists():
        print(f"no warehouse at {settings.build_warehouse} yet: run `make run` first")
        return 1
    with duckdb.connect(str(settings.build_warehouse), read_only=True) as con:
        print(con.sql("SELECT model, model_version, weighted_rmspe, mean_rmspe, is_latest, is_champion, is_pinned, champion_reason "
                      "FROM marts.dim_model_versions WHERE is_latest OR is_champion OR is_pinned "
                      "ORDER BY is_champion DESC, weighted_rmspe"))
        print(con.sql("SELECT changed_at, event, model, model_version, from_model, from_model_version, reason, "
                      "changed_by FROM ml.champion_history ORDER BY changed_at DESC LIMIT 10"))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.champion", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("show", help="the latest versions, the champion and the last changes")
    pin = sub.add_parser("pin", help="serve MODEL MODEL_VERSION as the champion until unpinned")
    pin.add_argument("model")
    pin.add_argument("model_version")
    unpin = sub.add_parser("unpin", help="let the rule (lowest recency-weighted mean backtest RMSPE) choose again")
    for p in (pin, unpin):
        p.add_argument("--reason", default="")
        p.add_argument("--by", default=getpass.getuser(), help="who asks (default: the login name)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    if args.action == "show":
        return _show(settings)
    config = {"action": args.action, "reason": args.reason, "requested_by": args.by,
              **({"model": args.model, "model_version": args.model_version} if args.action == "pin" else {})}
    job = defs.resolve_job_def("set_champion")
    log_file = settings.data_dir / "logs" / f"champion-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    print(f"set_champion: {args.action}; step output (dbt's log) in {log_file}", flush=True)
    # As `make run`: dbt's log of every model and test goes to the file, Dagster's own events only at DEBUG.
    console_level = "DEBUG" if settings.log_level == "DEBUG" else "WARNING"
    with DagsterInstance.get() as instance, open(log_file, "w") as out, contextlib.redirect_stdout(out):
        result = job.execute_in_process(
            run_config={"ops": {"ml__champion_pins": {"config": config}},
                        "loggers": {"console": {"config": {"log_level": console_level}}}},
            instance=instance, raise_on_error=False)
    if not result.success:
        print(f"set_champion failed: {failure_message(result.all_events)}", file=sys.stderr)
        return 1
    print(f"{args.action} done (run {result.run_id}); the published copy serves the new champion")
    return _show(settings)


if __name__ == "__main__":
    sys.exit(main())
