"""``POST /predict`` with every model the pipeline trains, the LSTM and the blend included (issue 13, item 5), on the
warehouse and artifacts the real pipeline leaves behind (tests/conftest.py).

* the LSTM and the blend answer with their own version and interval, and their live predictions of plan days are
  the forecasts the pipeline stored for that version (the live path reproduces the batch path);
* the LSTM forecasts each store from its origin: the history before it, nothing after it;
* the default is the champion whichever model it is; an unknown model is a 422; a blend whose member's artifact
  is gone is a 503; the model cache loads each artifact once, a blend's members included.
"""

from __future__ import annotations

import shutil

import duckdb
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from serving.api import create_app
from serving.api.model_artifact import LIVE_MODELS, LSTM_REACH_DAYS
from serving.api.model_cache import ModelCache, model_ref, models_dirs
from settings import Settings
from warehouse.champion import pin
from warehouse.dbt import run_dbt
from warehouse.publish import publish_warehouse

PLAN_START = pd.Timestamp("2015-08-01")  # the day after the synthetic history (tests/conftest.py)


def published(path, sql: str, params: list | None = None) -> pd.DataFrame:
    with duckdb.connect(":memory:") as con:
        con.execute(f"ATTACH '{path}' AS p (READ_ONLY); USE p")
        return con.execute(sql, params or []).df()


def latest(path, model: str) -> str:
    return published(path, "SELECT model_version FROM marts.dim_model_versions WHERE model = ? AND is_latest",
                     [model])["model_version"].item()


def request_rows(frame: pd.DataFrame) -> list[dict]:
    """Mart rows as request rows with the mart's own values (the same scenario as the pipeline's)."""
    return [{"store": int(r.store_id), "date": f"{r.sale_date:%Y-%m-%d}", "open": bool(r.is_open),
             "promo": bool(r.is_promo), "state_holiday": r.state_holiday, "school_holiday": bool(r.is_school_holiday)}
            for r in frame.itertuples()]


@pytest.fixture(scope="module")
def copy(pipeline_warehouse):
    return pipeline_warehouse.published


@pytest.fixture(scope="module")
def client(copy):
    with TestClient(create_app(copy), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def plan(copy) -> pd.DataFrame:
    return published(copy, "SELECT * FROM marts.fct_store_daily_features WHERE NOT is_history "
                           "ORDER BY store_id, sale_date")


def predictions(client, model: str | None, rows: list[dict]) -> tuple[dict, pd.DataFrame]:
    r = client.post("/predict", params={} if model is None else {"model": model}, json=rows)
    assert r.status_code == 200, r.text
    return r.json(), pd.DataFrame(r.json()["predictions"])


@pytest.mark.parametrize("model", ["lstm", "blend"])
def test_lstm_and_blend_answer_with_their_version_and_interval(client, copy, model):
    rows = [{"store": 1, "date": "2015-08-03", "promo": True}, {"store": 2, "date": "2015-03-10"},
            {"store": 3, "date": "2015-10-20"}, {"store": 1, "date": "2015-08-04", "open": False}]
    body, got = predictions(client, model, rows)
    assert (body["model"], body["model_version"]) == (model, latest(copy, model))
    assert "80%" in body["interval"]
    assert [(p["store"], p["date"]) for p in body["predictions"]] == [(r["store"], r["date"]) for r in rows]
    open_days = got.iloc[:3]
    assert (open_days["sales_pred"] > 0).all() and (open_days["customers_pred"] > 0).all()
    assert (open_days["sales_lower"] <= open_days["sales_pred"]).all()
    assert (open_days["sales_pred"] <= open_days["sales_upper"]).all()
    assert (open_days["sales_lower"] < open_days["sales_upper"]).all()
    assert got.iloc[3][["sales_pred", "customers_pred"]].tolist() == [0, 0]  # closed


@pytest.mark.parametrize("model", ["lstm", "blend"])
def test_live_predictions_of_the_first_plan_days_are_the_stored_forecast(client, copy, plan, model):
    """Store 1's first week, and store 3's days 3-9 alone (the plan days before them are read from the mart), in
    a shuffled order: the version's stored forecast of those days, interval included."""
    day = (plan["sale_date"] - PLAN_START).dt.days
    wanted = plan.loc[((plan["store_id"] == 1) & (day < 7)) | ((plan["store_id"] == 3) & day.between(3, 9))]
    body, got = predictions(client, model, request_rows(wanted.sample(frac=1, random_state=7)))
    stored = published(copy, "SELECT store_id AS store, strftime(forecast_date, '%Y-%m-%d') AS date, sales_pred, "
                             "sales_lower, sales_upper, customers_pred FROM ml.store_sales_forecast "
                             "WHERE model_version = ?", [body["model_version"]])
    merged = got.merge(stored, on=["store", "date"], suffixes=("", "_pipeline"), validate="1:1")
    assert len(merged) == len(wanted) == 14
    for column in ("sales_pred", "sales_lower", "sales_upper", "customers_pred"):
        assert merged[column].tolist() == pytest.approx(merged[f"{column}_pipeline"].tolist(), rel=1e-5, abs=1e-3)


def test_the_lstm_forecasts_each_store_from_its_own_origin(client, copy):
    """A history day is forecast from the history before the store's first requested day: adding later days or
    another store's rows does not change it, while the next day asked alone (its origin one day later, after
    one more actual) does change.  The days are asked with the mart's own values, so every request is the same
    scenario (a later day asked with other values changes the earlier day's look-ahead covariates, e.g. the
    promo days in the next 7, which the LSTM reads as the tree models do)."""
    day, next_day = request_rows(published(copy, "SELECT * FROM marts.fct_store_daily_features WHERE store_id = 2 "
                                                 "AND sale_date BETWEEN '2015-05-12' AND '2015-05-13' ORDER BY sale_date"))
    _, alone = predictions(client, "lstm", [day])
    _, together = predictions(client, "lstm", [day, next_day, {"store": 4, "date": "2015-08-05"}])
    _, later = predictions(client, "lstm", [next_day])
    # float32 network: batches of other shapes round differently, well below what one more actual changes
    assert together["sales_pred"][0] == pytest.approx(alone["sales_pred"][0], rel=1e-5)
    assert abs(later["sales_pred"][0] / together["sales_pred"][1] - 1) > 1e-4


def test_the_same_store_day_twice_is_two_scenarios_for_the_lstm(client):
    _, got = predictions(client, "lstm", [{"store": 1, "date": "2015-08-05", "promo": False},
                                          {"store": 1, "date": "2015-08-05", "promo": True}])
    assert abs(got["sales_pred"][1] / got["sales_pred"][0] - 1) > 1e-4
    _, alone = predictions(client, "lstm", [{"store": 1, "date": "2015-08-05", "promo": True}])
    assert got["sales_pred"][1] == pytest.approx(alone["sales_pred"][0], rel=1e-5)


@pytest.mark.parametrize("model", ["lstm", "blend"])
def test_days_beyond_the_lstms_reach_are_a_422(client, model):
    reachable = PLAN_START + pd.Timedelta(days=LSTM_REACH_DAYS - 1)
    body, _ = predictions(client, model, [{"store": 1, "date": f"{reachable:%Y-%m-%d}"}])
    assert body["predictions"][0]["warning"] is None
    r = client.post("/predict", params={"model": model},
                    json=[{"store": 2, "date": "2015-08-03"}, {"store": 1, "date": f"{reachable:%Y-%m-%d}"},
                          {"store": 1, "date": f"{reachable + pd.Timedelta(days=1):%Y-%m-%d}"}])
    assert r.status_code == 422, r.text
    [detail] = r.json()["detail"]
    assert detail["loc"] == ["body"] and "store 1" in detail["msg"] and f"{LSTM_REACH_DAYS} days" in detail["msg"]
    assert "2015-08-01" in detail["msg"]


def test_an_unknown_model_is_a_422_naming_every_model(client):
    r = client.post("/predict", params={"model": "arima"}, json={"store": 1, "date": "2015-08-03"})
    assert r.status_code == 422
    [detail] = r.json()["detail"]
    assert detail["loc"] == ["query", "model"] and all(m in detail["msg"] for m in LIVE_MODELS)
    assert {"lstm", "blend"} <= set(LIVE_MODELS)


@pytest.mark.parametrize("champion_model", ["lstm", "blend", "random_forest"])
def test_the_default_is_the_champion_whichever_model(champion_model):
    """The choice on dbt's flags (as marts.dim_model_versions gives them): no fallback to another model."""
    from serving.api.routers.predict import _choose
    from serving.queries import ModelVersions

    rows = {name: {"model": name, "model_version": f"v-{name}", "is_champion": name == champion_model}
            for name in LIVE_MODELS}
    info = ModelVersions(by_version={r["model_version"]: r for r in rows.values()}, latest=rows, latest_trained=rows,
                         champion=rows[champion_model])
    assert _choose(info, None, None) is rows[champion_model]
    assert _choose(info, "baseline", None) is rows["baseline"]
    assert _choose(info, None, "v-blend") is rows["blend"]


def test_a_pinned_lstm_champion_is_served_by_default(pipeline_warehouse, tmp_path, plan):
    """The LSTM pinned as the champion (as the set_champion job does; dbt rebuilds the forecast marts): a request
    without a model is answered by that LSTM version, with its stored forecast."""
    build = pipeline_warehouse.copy_build(tmp_path / "build.duckdb")
    version = latest(pipeline_warehouse.published, "lstm")
    with duckdb.connect(str(build)) as con:
        pin(con, "lstm", version, reason="test", by="test_predict_models")
    run_dbt(build, ["build", "--select", "tag:forecast"])
    copy = publish_warehouse(build, tmp_path / "published", source_run="test-pinned-lstm").path
    settings = Settings.from_env({"DATA_DIR": str(pipeline_warehouse.data_dir)})  # where the artifacts are
    with TestClient(create_app(copy, settings=settings), raise_server_exceptions=False) as c:
        body, got = predictions(c, None, request_rows(plan.loc[plan["store_id"] == 5].head(5)))
    assert (body["model"], body["model_version"], body["is_champion"], body["champion"]) == \
        ("lstm", version, True, "lstm")
    stored = published(copy, "SELECT sales_pred FROM ml.champion_forecast WHERE store_id = 5 "
                             "ORDER BY forecast_date LIMIT 5")
    assert got["sales_pred"].tolist() == pytest.approx(stored["sales_pred"].tolist(), rel=1e-5)


def test_a_blend_whose_member_artifact_is_gone_is_a_503(pipeline_warehouse, tmp_path):
    """A models folder holding every artifact but the LSTM's: the blend cannot predict (a 503 naming the member),
    the models whose artifacts are there still can."""
    data_dir = tmp_path / "data"
    for folder in (pipeline_warehouse.data_dir / "models").iterdir():
        if folder.name != "lstm":
            shutil.copytree(folder, data_dir / "models" / folder.name)
    # published beside that models folder: the pipeline's own models folder is not one the API may load from
    copy = publish_warehouse(pipeline_warehouse.build_warehouse, data_dir / "published", source_run="r").path
    settings = Settings.from_env({"DATA_DIR": str(data_dir)})
    with TestClient(create_app(copy, settings=settings), raise_server_exceptions=False) as c:
        r = c.post("/predict", params={"model": "blend"}, json={"store": 1, "date": "2015-08-03"})
        assert r.status_code == 503 and f"lstm {latest(copy, 'lstm')}" in r.json()["detail"], r.text
        assert str(tmp_path) not in r.text
        r = c.post("/predict", params={"model": "random_forest"}, json={"store": 1, "date": "2015-08-03"})
        assert r.status_code == 200


def test_the_cache_loads_each_artifact_once_a_blends_members_included(pipeline_warehouse):
    """A blend predicts with its members' cached loads, and keeps them cached while it is cached itself (even in a
    cache of one model); without a blend holding them, the least recently used model goes."""
    copy = pipeline_warehouse.published
    roots = models_dirs(pipeline_warehouse.data_dir, copy)
    with duckdb.connect(":memory:") as con:
        con.execute(f"ATTACH '{copy}' AS p (READ_ONLY); USE p")
        refs = {name: model_ref(con, name, latest(copy, name), roots) for name in ["blend", "lstm", "random_forest"]}
    assert refs["blend"].context_days == refs["lstm"].context_days > 0 and refs["random_forest"].context_days == 0
    assert {refs["lstm"], refs["random_forest"]} < set(refs["blend"].members)

    cache = ModelCache(size=3)
    lstm = cache.get(refs["lstm"], roots)
    blend = cache.get(refs["blend"], roots)
    assert {m.name for m in blend.members} == set(LIVE_MODELS) - {"blend"}
    assert any(member is lstm for member in blend.members), "the blend reuses the cached LSTM"

    small = ModelCache(size=1)
    blend = small.get(refs["blend"], roots)
    assert small.get(refs["blend"], roots) is blend
    [forest] = [m for m in blend.members if m.name == "random_forest"]
    # a hit: the blend's members stayed cached; the blend, now least recently used, goes (its members with it)
    assert small.get(refs["random_forest"], roots) is forest
    first = small.get(refs["lstm"], roots)
    small.get(refs["random_forest"], roots)
    assert small.get(refs["lstm"], roots) is not first  # evicted by the forest: loaded again
