"""The bad-input catalogue and the kill tests (issue 11: nothing wrong gets published, nothing good gets lost).

Every case edits a copy of the session fixture's raw files and runs the whole pipeline (fast profile) on a copy of
the fixture's data folder, i.e. on its committed good state: build warehouse, model artifacts, published copy. A bad
input must stop the run with a message (what `make run` prints: :func:`orchestration.run.failure_message`) naming
the file, the column and sample values, and leave that state byte for byte (:func:`state.last_good_state`). Cases
refused by the loader or the Great Expectations suites stop at the raw step within seconds; the few that need
dbt or training are separate and named so.

Odd but valid input goes through with the warnings it deserves (one run for all of it), and a run killed (SIGKILL)
during dbt, training, the ml write-back or publishing leaves the last good state too; the next run clears what it
left and succeeds.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from dagster import AssetSelection, DagsterInstance, DagsterRunStatus

from orchestration.assets.guards import GuardSettings
from orchestration.assets.publish import PUBLISHED_KEY
from orchestration.definitions import materialize_pipeline
from orchestration.resources import Retraining
from orchestration.run import failure_message
from orchestration.run_guard import registered_versions
from settings import REPO_ROOT
from state import last_good_state, version_folders
from warehouse.staging import last_commit

STAGED = ".warehouse.duckdb.run-"  # warehouse/staging.py: a run's staged copy of the build warehouse
PUBLISH_TEMP = "published/.warehouse.duckdb."  # warehouse/publish.py: a publisher's temporary file


def edit(raw: Path, stem: str, change: Callable[[pd.DataFrame], pd.DataFrame | None]) -> pd.DataFrame:
    """Rewrite ``raw/<stem>.csv`` through ``change`` (it edits the frame in place or returns a new one); returns
    what was written."""
    path = raw / f"{stem}.csv"
    frame = pd.read_csv(path, dtype={"StateHoliday": str})
    changed = change(frame)
    frame = frame if changed is None else changed
    frame.to_csv(path, index=False)
    return frame


def set_value(raw: Path, stem: str, row: Callable[[pd.DataFrame], Any], column: str, value: Any) -> pd.Series:
    """Set ``column`` of one row of ``raw/<stem>.csv`` (``row``: the frame -> its index label); returns the row."""
    label = None

    def change(frame: pd.DataFrame) -> None:
        nonlocal label
        label = row(frame)
        frame[column] = frame[column].astype(object)  # a fraction, a text or a blank in an integer column
        frame.loc[label, column] = value

    return edit(raw, stem, change).loc[label]


def open_day(store: int) -> Callable[[pd.DataFrame], Any]:
    """A day the store was open and sold something (the file's first)."""
    return lambda sales: sales.index[sales["Store"].eq(store) & sales["Open"].eq(1) & sales["Sales"].gt(0)][0]


def key(row: pd.Series) -> str:
    """How a failure's sample row names a store-day."""
    return f"Store={row.Store}, Date={row.Date}"


# ------------------------------------------------------------------------------------------ the catalogue


@dataclass(frozen=True)
class Case:
    spoil: Callable[[Path], list[str]]  # edits the raw folder; returns the sample values the message must show
    expected: tuple[str, ...]  # what else the message must say: the file, the column, the rule
    overrides: dict[str, Any] = field(default_factory=dict)  # resources of the run (materialize_pipeline)


CASES: dict[str, Case] = {}


def case(*expected: str, **overrides: Any) -> Callable:
    """Register the decorated spoiling function as a case under its name; ``expected``: what the message must say
    besides the samples the function returns; ``overrides``: resources of the run."""
    def register(spoil: Callable[[Path], list[str]]) -> Callable[[Path], list[str]]:
        CASES[spoil.__name__] = Case(spoil, expected, overrides)
        return spoil
    return register


# The cases


@case("- train.csv (raw.sales), column _Sales_vs_store (computed from Sales, Open, Store)",
      "GUARD_STORE_MAX_MULTIPLE", "max_value=10.0")
def twenty_sales_rows_x1000(raw: Path) -> list[str]:
    def times_1000(sales: pd.DataFrame) -> None:
        rows = sales.index[sales["Open"].eq(1) & sales["Sales"].gt(0)][::50][:20]
        sales.loc[rows, "Sales"] *= 1000

    sales = edit(raw, "train", times_1000)
    first = sales.loc[sales["Sales"] > 1_000_000].sort_values(["Store", "Date"]).iloc[0]
    return [f"{key(first)}, Sales={first.Sales}"]


@case("train.csv: column Sales must hold whole numbers")
def sales_stored_as_5263_7(raw: Path) -> list[str]:
    row = set_value(raw, "train", open_day(4), "Sales", 5263.7)
    return [f"{key(row)}, Sales=5263.7"]


@case("- test.csv (raw.plan), column Date:", "Plan dates after the last raw.sales date, up to horizon_days",
      "column _first_day_of_store (computed from Date, Store)")  # nor does it start the day after the history
def plan_ten_years_ahead(raw: Path) -> list[str]:
    def ahead(plan: pd.DataFrame) -> None:
        four = plan["Store"].eq(4)
        plan.loc[four, "Date"] = (pd.to_datetime(plan.loc[four, "Date"]) + pd.DateOffset(years=10)).dt.strftime("%Y-%m-%d")

    edit(raw, "test", ahead)
    return ["Store=4, Date=2025-"]


@case("- test.csv (raw.plan), column _days_since_previous (computed from Date, Store)", "A store's plan has no gaps")
def plan_with_a_missing_week(raw: Path) -> list[str]:
    dates = pd.to_datetime(pd.read_csv(raw / "test.csv")["Date"])
    week = pd.date_range(dates.min() + pd.Timedelta(days=9), periods=7)
    edit(raw, "test", lambda plan: plan.loc[~(plan["Store"].eq(3) & pd.to_datetime(plan["Date"]).isin(week))])
    return [f"_days_since_previous=8.0, Store=3, Date={week[-1] + pd.Timedelta(days=1):%Y-%m-%d}"]


@case("- train.csv (raw.sales), column DayOfWeek:", "value_set=[1, 2, 3, 4, 5, 6, 7]")
def day_of_week_8(raw: Path) -> list[str]:
    row = set_value(raw, "train", open_day(2), "DayOfWeek", 8)
    return [f"DayOfWeek=8, {key(row)}"]


@case("is too short: at least 98 days are needed (56 training days before a 42-day validation fold)",
      retraining=Retraining(force_refit=True))
def sixty_day_history(raw: Path) -> list[str]:
    """Through raw and dbt into training (refits forced: a forecast-only run would reuse the versions trained on
    the longer history)."""
    last = pd.to_datetime(pd.read_csv(raw / "train.csv")["Date"]).max()
    first = last - pd.Timedelta(days=59)
    edit(raw, "train", lambda sales: sales.loc[pd.to_datetime(sales["Date"]) >= first])
    return [f"history of 60 days ({first:%Y-%m-%d}..{last:%Y-%m-%d})"]


@case("- store.csv (raw.stores), column CompetitionDistance:", "GUARD_MAX_COMPETITION_DISTANCE_M")
def competition_distance_1e12(raw: Path) -> list[str]:
    set_value(raw, "store", lambda stores: 0, "CompetitionDistance", 1e12)
    return ["CompetitionDistance=1000000000000.0, Store=1"]


@case("- store.csv (raw.stores), column Store:", "Store ids are 1 or more")
def negative_store_id(raw: Path) -> list[str]:
    for stem in ("store", "train", "test"):  # consistently in every file
        edit(raw, stem, lambda frame: frame.assign(Store=frame["Store"].replace(2, -2)))
    return ["Store=-2"]


@case("store.csv is not UTF-8", "Save it as UTF-8")
def latin1_store_csv(raw: Path) -> list[str]:
    path = raw / "store.csv"
    text = path.read_text().replace("Jan,Apr", "Jän,Apr")
    path.write_bytes(text.encode("latin-1"))
    line = text[:text.index("Jän")].count("\n") + 1
    return [f"byte b'\\xe4' at byte offset {text.index('Jän') + 1} (line {line}), column PromoInterval, "
            "value 'J\\xe4n,Apr,Jul,Oct'"]


# Our own


@case("train.csv: has no data rows")
def header_only_train_csv(raw: Path) -> list[str]:
    path = raw / "train.csv"
    path.write_text(path.read_text().splitlines()[0] + "\n")
    return []


@case("has no store.csv or store.csv.gz: it is required")
def missing_store_csv(raw: Path) -> list[str]:
    (raw / "store.csv").unlink()
    return []


@case("train.csv: columns", "do not match the Rossmann layout", "(missing: ['Customers'], unexpected: none)")
def missing_column(raw: Path) -> list[str]:
    edit(raw, "train", lambda sales: sales.drop(columns="Customers"))
    return []


@case("store.csv: columns", "(missing: ['CompetitionDistance'], unexpected: ['CompDist'])")
def renamed_column(raw: Path) -> list[str]:
    edit(raw, "store", lambda stores: stores.rename(columns={"CompetitionDistance": "CompDist"}))
    return []


@case("train.csv: could not be read", 'Error when converting column "Date"')
def date_in_another_format(raw: Path) -> list[str]:
    sales = edit(raw, "train", lambda sales: sales.assign(
        Date=pd.to_datetime(sales["Date"]).dt.strftime("%d.%m.%Y")))
    return [f'Could not convert string "{sales["Date"].iat[0]}" to \'DATE\'']


@case("- train.csv (raw.sales), column Open:", "value_set=[0, 1]")
def open_is_2(raw: Path) -> list[str]:
    row = set_value(raw, "train", open_day(3), "Open", 2)
    return [f"Open=2, {key(row)}"]


@case("- train.csv (raw.sales), column Sales:", "min_value=0")
def negative_sales(raw: Path) -> list[str]:
    row = set_value(raw, "train", open_day(5), "Sales", -500)
    return [f"Sales=-500, {key(row)}"]


@case("train.csv: column Sales must hold whole numbers (at most 2,147,483,647)")
def sales_beyond_32_bits(raw: Path) -> list[str]:
    row = set_value(raw, "train", open_day(1), "Sales", 3_000_000_000)
    return [f"{key(row)}, Sales=3000000000.0"]


@case("train.csv: column Sales must hold whole numbers")
def nan_sales(raw: Path) -> list[str]:
    row = set_value(raw, "train", open_day(2), "Sales", "NaN")
    return [f"{key(row)}, Sales=nan"]


@case("- train.csv (raw.sales), column Sales:", "column values to not be null")
def empty_sales(raw: Path) -> list[str]:
    row = set_value(raw, "train", open_day(1), "Sales", None)
    return [f"Sales=None, {key(row)}"]


@case("- train.csv (raw.sales), column StateHoliday:", "value_set=['0', 'a', 'b', 'c']")
def unknown_state_holiday(raw: Path) -> list[str]:
    row = set_value(raw, "train", open_day(3), "StateHoliday", "d")
    return [f"StateHoliday=d, {key(row)}"]


@case("- train.csv (raw.sales), column Store:", "Every store must exist in raw.stores",
      "- test.csv (raw.plan), column Store:")
def store_missing_from_store_csv(raw: Path) -> list[str]:
    edit(raw, "store", lambda stores: stores.loc[stores["Store"].ne(3)])
    first_days = [pd.read_csv(raw / name).query("Store == 3")["Date"].min() for name in ("train.csv", "test.csv")]
    return [f"Store=3, Date={day}" for day in first_days]


@case("- store.csv (raw.stores), column Store:", "column values to be unique")
def duplicated_store_row(raw: Path) -> list[str]:
    edit(raw, "store", lambda stores: pd.concat([stores, stores.iloc[[1]].assign(StoreType="d")]))
    return ["Store=2; Store=2"]


@case("train.csv.gz: the gzip data is truncated or corrupt", "copy the file again")
def truncated_train_csv_gz(raw: Path) -> list[str]:
    data = gzip.compress((raw / "train.csv").read_bytes())
    (raw / "train.csv").unlink()
    (raw / "train.csv.gz").write_bytes(data[:len(data) // 2])
    return []


@case("where the header has 9")
def train_csv_cut_off_mid_line(raw: Path) -> list[str]:
    path = raw / "train.csv"
    lines = path.read_text().splitlines()
    cut = lines[-1][:lines[-1].index(",", lines[-1].index(",") + 1)]  # Store,DayOfWeek of the last line
    path.write_text("\n".join([*lines[:-1], cut]))
    return [f"train.csv: line {len(lines)} has 2 fields", f"'{cut}'"]


@case("- store.csv (raw.stores), column PromoInterval:", "'Jan,Apr,Jul,Oct', 'Feb,May,Aug,Nov'")
def unknown_promo_interval_month(raw: Path) -> list[str]:
    set_value(raw, "store", lambda stores: stores.index[stores["Promo2"].eq(1)][0], "PromoInterval", "Jan,Apr,Jul,Okt")
    return ["PromoInterval=Jan,Apr,Jul,Okt, Store=5"]


@case("- store.csv (raw.stores), column CompetitionOpenSinceYear:", "A year from 1900 to the current year")
def competition_year_1850(raw: Path) -> list[str]:
    set_value(raw, "store", lambda stores: 1, "CompetitionOpenSinceYear", 1850)
    return ["CompetitionOpenSinceYear=1850, Store=2"]


@case("- store.csv (raw.stores), column Promo2SinceYear:", "A year from 1900 to the current year")
def promo2_year_in_the_future(raw: Path) -> list[str]:
    set_value(raw, "store", lambda stores: stores.index[stores["Promo2"].eq(1)][0], "Promo2SinceYear", 2999)
    return ["Promo2SinceYear=2999, Store=5"]


@case("- test.csv (raw.plan), column Store:", "Every store must exist in raw.stores")
def plan_store_not_in_store_csv(raw: Path) -> list[str]:
    edit(raw, "test", lambda plan: pd.concat([plan, plan.loc[plan["Store"].eq(1)].assign(Store=99, Id=lambda f: f["Id"] + 10**6)]))
    return ["Store=99, Date="]


@case("train.csv is not UTF-8", "(line 1), in the header")
def binary_garbage(raw: Path) -> list[str]:
    (raw / "train.csv").write_bytes(bytes(range(128, 256)) * 64)
    return []


@case("train.csv: 1 (Store, Date) key(s) appear more than once with different values (column Sales)")
def same_store_day_twice_with_different_sales(raw: Path) -> list[str]:
    sales = edit(raw, "train", lambda sales: pd.concat([sales, sales.iloc[[0]].assign(Sales=sales["Sales"].iat[0] + 1)]))
    first = sales.iloc[0]
    return [f"{key(first)}: Sales={first.Sales} vs Sales={first.Sales + 1}"]


@case("- train.csv (raw.sales), column Sales:", "No sales on closed days")
def sales_on_a_closed_day(raw: Path) -> list[str]:
    row = set_value(raw, "train", lambda sales: sales.index[sales["Open"].eq(0)][0], "Sales", 1234)
    return [f"Sales=1234, {key(row)}"]


@case("- train.csv (raw.sales), column _Sales_per_Customer (computed from Sales, Customers, Open)",
      "GUARD_SALES_PER_CUSTOMER_MIN..MAX")
def thousands_of_euros_per_customer(raw: Path) -> list[str]:
    row = set_value(raw, "train", open_day(2), "Customers", 1)
    return [f"{key(row)}, Sales={row.Sales}, Customers=1"]


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_stops_the_run_naming_file_column_and_samples(pipeline_warehouse, data_copy, tmp_path, name):
    bad = CASES[name]
    raw = shutil.copytree(pipeline_warehouse.raw_dir, tmp_path / "raw")
    samples = bad.spoil(raw)
    before = last_good_state(data_copy)

    result = materialize_pipeline(data_copy, raw, **bad.overrides)

    assert not result.success
    message = failure_message(result.all_events)
    missing = [text for text in [*bad.expected, *samples] if text not in message]
    assert not missing, f"{missing} not in:\n{message}"
    assert last_good_state(data_copy) == before


def test_with_the_raw_guard_lowered_the_forecast_guard_keeps_a_500x_forecast_unpublished(pipeline_warehouse,
                                                                                        data_copy, tmp_path):
    """20 sales rows x1000 as above, but on two stores' last ten open Mondays: with the raw guards lowered to let
    them through, the refit seasonal-median baseline forecasts about 1000x on those stores' Mondays, and the
    forecast guard (default GUARD_FORECAST_MAX_MULTIPLE) stops the run before anything is published. The run fails
    after its write-back: what it wrote (raw tables, new model versions, their forecasts) is discarded."""
    raw = shutil.copytree(pipeline_warehouse.raw_dir, tmp_path / "raw")

    def mondays_x1000(sales: pd.DataFrame) -> None:
        mondays = sales.loc[sales["Store"].isin([1, 2]) & sales["Open"].eq(1)
                            & pd.to_datetime(sales["Date"]).dt.dayofweek.eq(0)]
        sales.loc[mondays.sort_values("Date").groupby("Store").tail(10).index, "Sales"] *= 1000

    edit(raw, "train", mondays_x1000)
    before = last_good_state(data_copy)
    committed = last_commit(data_copy / "warehouse.duckdb")
    lenient = GuardSettings(store_max_multiple=1e6, sales_per_customer_max=1e6)

    result = materialize_pipeline(data_copy, raw, guards=lenient, retraining=Retraining(force_refit=True))

    assert not result.success
    message = failure_message(result.all_events)
    assert "forecast_within_store_history" in message and "forecast refused" in message
    assert "GUARD_FORECAST_MAX_MULTIPLE" in message
    assert re.search(r"store [12], model baseline \S+: [\d,]+ on \d{4}-\d\d-\d\d", message)
    multiples = [float(m.replace(",", "")) for m in re.findall(r"\(([\d,.]+) x\)", message)]
    assert max(multiples) >= 500, message
    written = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"raw/sales", "ml/model_registry", "ml/store_sales_forecast"} <= written
    assert last_good_state(data_copy) == before
    assert last_commit(data_copy / "warehouse.duckdb") == committed


# ------------------------------------------------------------------------------------------ odd but valid


def odd_but_valid_input(fixture_raw: Path, target: Path) -> tuple[Path, pd.DataFrame]:
    """Store 1 of the fixture alone, its last 104 days; three rows' DayOfWeek not their date's; a plan that starts
    10 days inside the history; store.csv with a UTF-8 BOM and CRLF line ends. Returns the folder and the rows
    with the wrong DayOfWeek."""
    raw = shutil.copytree(fixture_raw, target)
    sales = pd.read_csv(raw / "train.csv", dtype={"StateHoliday": str})
    sales = sales.loc[sales["Store"].eq(1) & (pd.to_datetime(sales["Date"]) > "2015-04-18")].reset_index(drop=True)
    wrong = sales.index[-7:-4]
    sales.loc[wrong, "DayOfWeek"] = sales.loc[wrong, "DayOfWeek"] % 7 + 1
    sales.to_csv(raw / "train.csv", index=False)
    plan = pd.read_csv(raw / "test.csv", dtype={"StateHoliday": str})
    overlap = sales.loc[pd.to_datetime(sales["Date"]) > "2015-07-21"].assign(Id=lambda f: range(10**6, 10**6 + len(f)))
    pd.concat([overlap[plan.columns], plan.loc[plan["Store"].eq(1)]]).to_csv(raw / "test.csv", index=False)
    stores = pd.read_csv(raw / "store.csv")
    text = stores.loc[stores["Store"].eq(1)].to_csv(index=False, lineterminator="\r\n")
    (raw / "store.csv").write_bytes(("\ufeff" + text).encode())
    return raw, sales.loc[wrong]


def test_odd_but_valid_input_goes_through_with_warnings(pipeline_warehouse, tmp_path, caplog):
    """One store, a 104-day history, a wrong DayOfWeek, a plan overlapping the history, a BOM and CRLF, and quotes
    and spaces in RAW_DATA_DIR and DATA_DIR: the run succeeds, saying what it did about each. On a fresh DATA_DIR:
    on the fixture's five-store warehouse the earlier versions' forecasts of the four stores gone from store.csv
    fail dbt's relationships tests of the forecast marts (the run then fails, changing nothing)."""
    raw, wrong = odd_but_valid_input(pipeline_warehouse.raw_dir, tmp_path / "it's a \"raw\" folder")
    data_dir = tmp_path / "it's the \"data\" folder"
    instance = DagsterInstance.ephemeral()

    with caplog.at_level(logging.WARNING):
        result = materialize_pipeline(data_dir, raw, instance=instance)

    assert result.success, failure_message(result.all_events)
    warnings = "\n".join([*(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING),
                          *(e.user_message for e in instance.all_logs(result.run_id) if e.level == logging.WARNING)])
    assert "history of 104 days: 1 of 3 folds" in warnings
    assert "only 3 complete store-months: 2 clusters instead of 20" in warnings
    assert "lstm: history of 62 days is shorter than lookback 21 + horizon 42: lookback lowered to 20 days" in warnings
    assert "- train.csv (raw.sales), column DayOfWeek, _isodow_of_Date (computed from Date): 3 of" in warnings
    first = wrong.iloc[0]
    assert f"DayOfWeek={first.DayOfWeek}, {key(first)}" in warnings
    [plan] = [m for m in result.asset_materializations_for_node("raw_tables") if m.asset_key.path == ["raw", "plan"]]
    assert plan.metadata["plan_days_dropped"].value == 10

    with duckdb.connect(str(data_dir / "published" / "warehouse.duckdb"), read_only=True) as con:
        per_model = dict(con.execute("SELECT model, count(*) FROM marts.fct_sales_forecast WHERE store_id = 1 "
                                     "GROUP BY model").fetchall())
        stores = con.execute("SELECT DISTINCT store_id FROM marts.fct_sales_forecast").fetchall()
        splits = con.execute("SELECT DISTINCT split FROM ml.model_metrics").fetchall()
        n_clusters = con.execute("SELECT count(*) FROM ml.customer_sales_cluster_centers").fetchone()[0]
    assert set(per_model) >= {"baseline", "random_forest", "lightgbm", "lstm"}
    assert set(per_model.values()) == {42} and stores == [(1,)]
    assert splits == [("validation",)] and n_clusters == 2


# ------------------------------------------------------------------------------------------ kill tests

# A run that kills its own process group (this process and dbt, as a stopped container would) at one step.
KILLED_RUN = """
import os, signal, sys
from dagster import AssetSelection, DagsterInstance, Output
from forecasting.protocol import MODEL_NAMES
from orchestration.assets.dbt import warehouse_models
from orchestration.assets.models import model_key
from orchestration.assets.publish import PUBLISHED_KEY
from orchestration.definitions import materialize_pipeline
from orchestration.resources import Retraining

data_dir, raw_dir, home, step = sys.argv[1:5]

def die(*args, **kwargs):
    os.killpg(0, signal.SIGKILL)

if step == "dbt":  # dbt has built its first model into the staged warehouse and goes on
    from dagster_dbt import DbtCliInvocation
    stream = DbtCliInvocation.stream
    def stream_then_die(self, *args, **kwargs):
        for event in stream(self, *args, **kwargs):
            yield event
            if isinstance(event, Output):
                die()
    DbtCliInvocation.stream = stream_then_die
    selection = list(warehouse_models.keys)
elif step == "training":  # the first model's 3 files are in place; the second's 2nd file is being written
    import pandas as pd
    to_parquet, writes = pd.DataFrame.to_parquet, []
    def to_parquet_then_die(frame, path, *args, **kwargs):
        if "/models/" in str(path):
            writes.append(path)
            if len(writes) == 5:
                die()
        return to_parquet(frame, path, *args, **kwargs)
    pd.DataFrame.to_parquet = to_parquet_then_die
    selection = [model_key("baseline"), model_key("random_forest")]
elif step == "write-back":  # inside the write-back's transaction: the forecasts written, not committed
    import warehouse.writeback
    warehouse.writeback.append_rows = die
    selection = AssetSelection.assets(*map(model_key, MODEL_NAMES)).downstream()
elif step == "publish":  # the tables copied into the temporary file, its metadata not yet written
    import warehouse.publish
    warehouse.publish._write_meta = die
    selection = [PUBLISHED_KEY]
materialize_pipeline(data_dir, raw_dir, selection=selection, instance=DagsterInstance.local_temp(home),
                     retraining=Retraining(force_refit=step == "training"))
sys.exit(3)  # not reached
"""
KILL_POINTS = ("dbt", "training", "write-back", "publish")


def kill_at(step: str, data_dir: Path, raw_dir: Path, home: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    child = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(data_dir), str(raw_dir), str(home), step],
                             cwd=REPO_ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL)
    assert child.wait(timeout=300) == -signal.SIGKILL, f"the run to be killed during {step} was not"


def test_runs_killed_at_each_step_leave_the_last_good_state_and_the_next_run_clears_up(pipeline_warehouse,
                                                                                      data_copy, tmp_path):
    """Four runs killed one after another on the same DATA_DIR, each also the next run after the one before (it
    must first clear that one's leftovers), then a plain rerun of the last one's steps."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    instance = DagsterInstance.local_temp(str(home))
    before = last_good_state(data_copy)
    models = data_copy / "models"
    dead: list[str] = []
    for step in KILL_POINTS:
        kill_at(step, data_copy, pipeline_warehouse.raw_dir, home)

        killed = instance.get_runs(limit=1)[0]
        assert killed.status == DagsterRunStatus.STARTED and killed.run_id not in dead
        assert all(instance.get_run_by_id(run).status == DagsterRunStatus.FAILURE for run in dead), step
        after = last_good_state(data_copy)
        assert {path: after.get(path) for path in before} == before, step  # byte for byte
        left = after.keys() - before.keys()  # what this run left, none of the runs' before it
        staged = {p for p in left if p.startswith(f"{STAGED}{killed.run_id}")}
        published_temp = {p for p in left if p.startswith(PUBLISH_TEMP)}
        artifacts = {p for p in left if p.startswith("models/")}
        assert staged and left == staged | published_temp | artifacts, step
        assert bool(published_temp) == (step == "publish"), step
        if step == "training":  # one model saved (not yet in ml.model_registry), one half-written
            folders = {path.split("/")[2] for path in artifacts}
            assert len(folders) == 2 and len([f for f in folders if f.startswith(".")]) == 1, folders
        else:
            assert not artifacts, step
        assert killed.run_id in (data_copy / ".run.lock").read_text()  # it died holding the lock
        dead.append(killed.run_id)

    rerun = materialize_pipeline(data_copy, pipeline_warehouse.raw_dir, instance=instance,
                                 selection=AssetSelection.assets(PUBLISHED_KEY).downstream())

    assert rerun.success, failure_message(rerun.all_events)
    assert all(instance.get_run_by_id(run).status == DagsterRunStatus.FAILURE for run in dead)
    assert not list(data_copy.glob(f"{STAGED}*")) and not list(data_copy.glob(f"{PUBLISH_TEMP}*"))
    assert not list(models.glob("*/.*"))  # no temporary artifact folder
    assert version_folders(models) == registered_versions(data_copy / "warehouse.duckdb")  # no orphan
    assert (data_copy / ".run.lock").read_text() == ""
