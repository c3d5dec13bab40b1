"""The forecast API (FastAPI TestClient) on the warehouse the pipeline publishes (tests/conftest.py).

Which version is latest and which is the champion is dbt's (marts.dim_model_versions, unit-tested in dbt): these
tests check that the API answers with what the published copy says. Tests that need more than one version per
model use a private copy of the build warehouse with older versions written through the write-back and the
forecast marts rebuilt by dbt.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from serving.api import create_app
from serving.api.model_artifact import LIVE_MODELS
from serving.reader import read_publication
from settings import Settings
from warehouse.dbt import run_dbt
from warehouse.publish import publish_warehouse
from warehouse.writeback import write_model_outputs

PLAN_START = "2015-08-01"


def published(path, sql, params=None) -> pd.DataFrame:
    with duckdb.connect(":memory:") as con:
        con.execute(f"ATTACH '{path}' AS p (READ_ONLY); USE p")
        return con.execute(sql, params or []).df()


def model_flags(path) -> pd.DataFrame:
    """marts.dim_model_versions of a published copy, indexed by model_version."""
    return published(path, "SELECT * FROM marts.dim_model_versions").set_index("model_version")


def latest(path, model: str) -> str:
    flags = model_flags(path)
    return flags.index[(flags["model"] == model) & flags["is_latest"]].item()


def champion(path) -> tuple[str, str]:
    flags = model_flags(path)
    row = flags.loc[flags["is_champion"]]
    return row["model"].item(), row.index.item()


@pytest.fixture(scope="module")
def copy(pipeline_warehouse):
    return pipeline_warehouse.published


@pytest.fixture(scope="module", params=["cached", "per_request"])
def client(copy, request):
    with TestClient(create_app(copy, mode=request.param), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def older_versions(pipeline_warehouse, tmp_path_factory):
    """The pipeline's warehouse plus an older version of every model (its rows under `<version>-older`, trained a
    day earlier, forecasts 10% lower) and one very poor extra backtest fold for the champion; the forecast marts
    rebuilt by dbt and published. Returns (build warehouse, published copy, the champion before)."""
    root = tmp_path_factory.mktemp("api-versions")
    build = pipeline_warehouse.copy_build(root / "build.duckdb")
    before = champion(pipeline_warehouse.published)
    with duckdb.connect(str(build)) as con:
        older = "model_version || '-older' AS model_version"
        write_model_outputs(
            con,
            forecasts=con.sql(f"SELECT * REPLACE ({older}, sales_pred * 0.9 AS sales_pred, sales_lower * 0.9 AS "
                              "sales_lower, sales_upper * 0.9 AS sales_upper) FROM ml.store_sales_forecast").df(),
            metrics=con.sql(f"SELECT * REPLACE ({older}) FROM ml.model_metrics").df(),
            registry=con.sql(f"SELECT * REPLACE ({older}, trained_at - INTERVAL 1 DAY AS trained_at) "
                             "FROM ml.model_registry").df())
        con.execute("INSERT INTO ml.model_metrics VALUES (?, ?, 'backtest_99', 'rmspe', 10.0, now())", list(before))
    run_dbt(build, ["build", "--select", "tag:forecast"])
    version = publish_warehouse(build, root / "published", source_run="test-api-versions")
    return build, version.path, before


@pytest.fixture(scope="module")
def versions_client(older_versions, pipeline_warehouse):
    settings = Settings.from_env({"DATA_DIR": str(pipeline_warehouse.data_dir)})  # where the artifacts are
    with TestClient(create_app(older_versions[1], settings=settings), raise_server_exceptions=False) as c:
        yield c


# ------------------------------------------------------------------------------------------ reads


def test_health(client, copy):
    version = read_publication(copy)
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["published_version"] == version.version_id
    assert body["source_run"] == version.source_run
    assert "published_path" not in body and str(copy) not in r.text and str(copy.parent) not in r.text
    published_at = dt.datetime.fromisoformat(body["published_at"])
    assert published_at.utcoffset() == dt.timedelta(0), "a timestamp says it is UTC"
    expected = version.published_at
    expected = expected.replace(tzinfo=dt.UTC) if expected.tzinfo is None else expected
    assert published_at == expected


def test_stores(client, pipeline_warehouse):
    r = client.get("/stores")
    assert r.status_code == 200
    stores = r.json()
    assert [s["store_id"] for s in stores] == list(range(1, pipeline_warehouse.n_stores + 1))
    assert {"store_type", "assortment", "competition_distance_m", "promo_interval"} <= set(stores[0])
    assert [s["store_id"] for s in client.get("/stores?limit=2&offset=1").json()] == [2, 3]
    one = client.get("/stores/2")
    assert one.status_code == 200 and one.json() == stores[1]


@pytest.mark.parametrize("url", ["/stores/999", "/stores/999/forecast", "/stores/999/forecast/monthly"])
def test_unknown_store_is_404(client, url):
    r = client.get(url)
    assert r.status_code == 404
    assert "Store 999 not found" in r.json()["detail"]


def test_forecast_defaults_to_the_champion(client, copy, pipeline_warehouse):
    r = client.get("/stores/1/forecast")
    assert r.status_code == 200
    body = r.json()
    assert (body["model"], body["model_version"], body["is_champion"]) == (*champion(copy), True)
    rows = body["rows"]
    assert len(rows) == pipeline_warehouse.horizon_days and rows[0]["date"] == PLAN_START
    assert all(x["sales_lower"] <= x["sales_pred"] <= x["sales_upper"] for x in rows)
    assert all(x["sales_pred"] == 0 for x in rows if x["is_open"] is False)
    expected = published(copy, "SELECT * FROM ml.champion_forecast WHERE store_id = 1 ORDER BY forecast_date")
    assert [x["sales_pred"] for x in rows] == expected["sales_pred"].tolist()
    assert [x["date"] for x in rows] == [f"{d:%Y-%m-%d}" for d in expected["forecast_date"]]


def test_forecast_of_a_named_model_and_date_range(client, copy):
    r = client.get("/stores/2/forecast", params={"start": "2015-08-03", "end": "2015-08-09", "model": "lstm"})
    assert r.status_code == 200
    body = r.json()
    assert (body["model"], body["model_version"]) == ("lstm", latest(copy, "lstm"))
    assert body["is_champion"] == (champion(copy)[0] == "lstm")
    assert [x["date"] for x in body["rows"]] == [f"2015-08-{d:02d}" for d in range(3, 10)]
    assert client.get("/stores/2/forecast", params={"start": "2030-01-01"}).json()["rows"] == []


def test_monthly_forecast_is_the_monthly_mart(client, copy, pipeline_warehouse):
    daily = client.get("/stores/3/forecast").json()
    monthly = client.get("/stores/3/forecast/monthly").json()
    assert monthly["model_version"] == daily["model_version"] and monthly["is_champion"]
    by_month: dict[str, float] = {}
    for row in daily["rows"]:
        by_month[row["date"][:7] + "-01"] = by_month.get(row["date"][:7] + "-01", 0.0) + row["sales_pred"]
    assert [m["month_start"] for m in monthly["rows"]] == sorted(by_month)
    for m in monthly["rows"]:
        assert m["sales_pred"] == pytest.approx(by_month[m["month_start"]])
        assert m["sales_lower"] <= m["sales_pred"] <= m["sales_upper"]
        assert m["n_open_days"] <= m["n_days"] and m["n_actual_days"] == 0 and m["sales_actual"] is None
    assert sum(m["n_days"] for m in monthly["rows"]) == pipeline_warehouse.horizon_days
    mart = published(copy, "SELECT * FROM marts.fct_sales_forecast_monthly WHERE store_id = 3 AND model_version = ? "
                           "AND is_served ORDER BY month_start", [monthly["model_version"]])
    assert [m["sales_pred"] for m in monthly["rows"]] == mart["sales_pred"].tolist()
    assert [m["n_open_days"] for m in monthly["rows"]] == mart["n_open_days"].tolist()
    # start/end pick the months that overlap them
    august = client.get("/stores/3/forecast/monthly", params={"start": "2015-08-20", "end": "2015-08-21"}).json()
    assert [m["month_start"] for m in august["rows"]] == ["2015-08-01"]


def test_models(client, copy):
    body = client.get("/models").json()
    model, version = champion(copy)
    flags = model_flags(copy)
    assert body["champion"] == {"model": model, "model_version": version,
                                "validation_rmspe": pytest.approx(flags.at[version, "validation_rmspe"]),
                                "mean_rmspe": pytest.approx(flags.at[version, "mean_rmspe"])}
    assert {(m["model"], m["model_version"]) for m in body["models"]} == set(zip(flags["model"], flags.index))
    for m in body["models"]:
        assert (m["is_latest"], m["is_champion"], m["has_forecasts"]) == tuple(
            flags.loc[m["model_version"], ["is_latest", "is_champion", "has_forecasts"]].tolist())
    for m in body["models"]:
        assert dt.datetime.fromisoformat(m["trained_at"]).utcoffset() == dt.timedelta(0), m["trained_at"]
    rf = next(m for m in body["models"] if m["model"] == "random_forest")
    assert {"rmspe", "rmse", "mae", "mape"} <= set(rf["metrics"]["validation"])
    assert {"validation", "backtest_1"} <= set(rf["metrics"])
    assert isinstance(rf["params"], dict)


@pytest.mark.parametrize("url, where", [
    ("/stores/abc", ["path", "store_id"]),
    ("/stores/0", ["path", "store_id"]),
    ("/stores/99999999999", ["path", "store_id"]),
    ("/stores/1/forecast?start=2015-08-10&end=2015-08-01", ["query", "start"]),
    ("/stores/1/forecast?start=2015-13-01", ["query", "start"]),
    ("/stores/1/forecast?end=yesterday", ["query", "end"]),
    ("/stores/1/forecast?model=Robert%27%29%3B%20DROP", ["query", "model"]),
    ("/stores/1/forecast?model_version=x%27%20OR%201%3D1%20--", ["query", "model_version"]),
    ("/stores/1/forecast/monthly?start=2015-09-01&end=2015-08-01", ["query", "start"]),
    ("/stores?limit=0", ["query", "limit"]),
    ("/stores?offset=-1", ["query", "offset"]),
    ("/stores?offset=9223372036854775808", ["query", "offset"]),
    ("/stores?limit=9223372036854775808", ["query", "limit"]),
    ("/stores?offset=99999999999999999999999999", ["query", "offset"]),
    ("/stores/1/forecast?start=0", ["query", "start"]),
    ("/stores/1/forecast?end=20150801", ["query", "end"]),
    ("/stores/1/forecast/monthly?start=1438387200", ["query", "start"]),
    ("/models?latest_only=perhaps", ["query", "latest_only"]),
])
def test_bad_requests_are_422_with_the_field_named(client, url, where):
    r = client.get(url)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert any(d["loc"] == where and d["msg"] for d in detail), detail


def test_unknown_model_versions_are_404(client, copy):
    with_forecasts = sorted(model_flags(copy).query("is_latest")["model"])
    for params, fragment in [
        ({"model": "xgboost"}, f"models with forecasts: {with_forecasts}"),
        ({"model_version": "20990101T000000Z"}, "not found"),
        ({"model": "lstm", "model_version": latest(copy, "baseline")}, "of model lstm not found"),
    ]:
        r = client.get("/stores/1/forecast", params=params)
        assert r.status_code == 404 and fragment in r.json()["detail"], (params, r.text)


def test_openapi_docs(client):
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/stores", "/stores/{store_id}", "/stores/{store_id}/forecast",
            "/stores/{store_id}/forecast/monthly", "/models", "/predict"} <= set(paths)


# ------------------------------------------------------------------------------------------ versions


def test_a_models_older_version_by_name(versions_client, older_versions):
    _, path, _ = older_versions
    old = latest(path, "baseline") + "-older"
    r = versions_client.get("/stores/2/forecast", params={"model_version": old, "end": "2015-08-01"})
    assert r.status_code == 200 and r.json()["model"] == "baseline" and r.json()["model_version"] == old
    assert r.json()["is_champion"] is False and len(r.json()["rows"]) == 1
    newest = versions_client.get("/stores/2/forecast", params={"model": "baseline", "end": "2015-08-01"}).json()
    assert newest["model_version"] == latest(path, "baseline")
    assert r.json()["rows"][0]["sales_pred"] == pytest.approx(0.9 * newest["rows"][0]["sales_pred"])


def test_models_latest_only_and_one_model(versions_client, older_versions):
    _, path, _ = older_versions
    flags = model_flags(path)
    everything = versions_client.get("/models").json()["models"]
    assert len(everything) == len(flags) == 2 * flags["is_latest"].sum()
    newest = versions_client.get("/models", params={"latest_only": True}).json()["models"]
    assert {(m["model"], m["model_version"]) for m in newest} == {(k, latest(path, k)) for k in flags["model"]}
    assert all(m["is_latest"] and not m["model_version"].endswith("-older") for m in newest)
    only = versions_client.get("/models", params={"model": "lstm"}).json()["models"]
    assert {m["model"] for m in only} == {"lstm"} and len(only) == 2


def test_the_champion_is_dbts(versions_client, older_versions):
    """A poor extra backtest fold moved the champion elsewhere: the API follows marts.dim_model_versions, and
    ml.champion_forecast (dbt's view, materialised in the copy) holds that version's rows."""
    _, path, before = older_versions
    now = champion(path)
    assert now != before and not now[1].endswith("-older")
    body = versions_client.get("/models").json()
    assert (body["champion"]["model"], body["champion"]["model_version"]) == now
    forecast = versions_client.get("/stores/1/forecast").json()
    assert (forecast["model"], forecast["model_version"], forecast["is_champion"]) == (*now, True)
    view = published(path, "SELECT DISTINCT model, model_version FROM ml.champion_forecast")
    assert list(view.itertuples(index=False, name=None)) == [now]


# ------------------------------------------------------------------------------------------ predict


def test_predict_one_row_serves_the_champion_with_its_interval(client, copy):
    r = client.post("/predict", json={"store": 1, "date": "2015-08-03", "promo": True})
    assert r.status_code == 200, r.text
    body = r.json()
    champion_model, champion_version = champion(copy)
    assert body["champion"] == champion_model
    assert (body["model"], body["model_version"]) == (champion_model, champion_version) and body["is_champion"]
    assert "80%" in body["interval"]
    [p] = body["predictions"]
    assert p["store"] == 1 and p["date"] == "2015-08-03" and p["open"] is True
    assert 0 < p["sales_lower"] < p["sales_pred"] < p["sales_upper"] and p["customers_pred"] > 0
    assert p["warning"] is None


@pytest.mark.parametrize("model", LIVE_MODELS)
def test_predict_with_each_live_model_matches_its_stored_forecast_and_interval(client, copy, model):
    """The plan's store-days of one store (a request is one scenario: the same rows as the pipeline's): the model
    predicts what the pipeline wrote back, with the same interval (the same factors per horizon week)."""
    plan = published(copy, "SELECT * FROM marts.fct_store_daily_features WHERE NOT is_history AND store_id = 2 "
                           "ORDER BY sale_date")
    body = [{"store": 2, "date": f"{r.sale_date:%Y-%m-%d}", "open": bool(r.is_open), "promo": bool(r.is_promo),
             "state_holiday": r.state_holiday, "school_holiday": bool(r.is_school_holiday)} for r in plan.itertuples()]
    r = client.post("/predict", params={"model": model}, json=body)
    assert r.status_code == 200, r.text
    assert r.json()["model"] == model
    got = pd.DataFrame(r.json()["predictions"])
    stored = published(copy, "SELECT strftime(forecast_date, '%Y-%m-%d') AS date, sales_pred, sales_lower, sales_upper "
                             "FROM ml.store_sales_forecast WHERE model_version = ? AND store_id = 2",
                       [r.json()["model_version"]])
    merged = got.merge(stored, on="date", suffixes=("", "_pipeline"), validate="1:1")
    assert len(merged) == len(plan) > 0
    for column in ("sales_pred", "sales_lower", "sales_upper"):
        assert merged[column].tolist() == pytest.approx(merged[f"{column}_pipeline"].tolist(), rel=1e-6, abs=1e-6)


def test_predict_warns_about_dates_far_outside_history_and_plan(client):
    r = client.post("/predict", params={"model": "random_forest"},
                    json=[{"store": 1, "date": "2015-08-10"}, {"store": 1, "date": "2030-06-03"},
                          {"store": 1, "date": "1995-06-05"}])
    assert r.status_code == 200, r.text
    near, future, past = r.json()["predictions"]
    assert near["warning"] is None
    assert "2030-06-03" in future["warning"] and "after the forecast horizon" in future["warning"]
    assert "before the model's training data" in past["warning"]
    assert future["sales_lower"] <= future["sales_pred"] <= future["sales_upper"]


def test_predict_many_rows_keeps_their_order_and_kaggle_names(client):
    rows = [{"Store": 3, "Date": "2015-08-05", "Open": 1, "Promo": 0, "StateHoliday": "0", "SchoolHoliday": 0,
             "DayOfWeek": 3},
            {"store": 1, "date": "2015-08-04", "open": False},
            {"store": 2, "date": "2016-03-01", "state_holiday": 0, "open": None},  # beyond the horizon
            {"store": 1, "date": "2015-08-03", "promo": True}]
    r = client.post("/predict", json=rows)
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert [(p["store"], p["date"]) for p in preds] == [(3, "2015-08-05"), (1, "2015-08-04"), (2, "2016-03-01"),
                                                        (1, "2015-08-03")]
    assert preds[1]["open"] is False and preds[1]["sales_pred"] == 0 and preds[1]["customers_pred"] == 0
    assert preds[2]["open"] is True and preds[2]["sales_pred"] > 0  # null Open counts as open


def test_predict_matches_the_pipelines_forecast(client, copy):
    """Features built by the API for the plan's store-days equal the mart's: the served model predicts what the
    pipeline wrote back for those days."""
    plan = published(copy, "SELECT * FROM marts.fct_store_daily_features WHERE NOT is_history "
                           "ORDER BY store_id, sale_date")
    body = [{"store": int(r.store_id), "date": f"{r.sale_date:%Y-%m-%d}", "open": bool(r.is_open),
             "promo": bool(r.is_promo), "state_holiday": r.state_holiday, "school_holiday": bool(r.is_school_holiday)}
            for r in plan.itertuples()][::-1]  # reversed: order must not matter
    r = client.post("/predict", json=body)
    assert r.status_code == 200, r.text
    got = pd.DataFrame(r.json()["predictions"])
    expected = published(copy, "SELECT store_id AS store, strftime(forecast_date, '%Y-%m-%d') AS date, sales_pred, "
                               "customers_pred FROM ml.store_sales_forecast WHERE model_version = ?",
                         [r.json()["model_version"]])
    merged = got.merge(expected, on=["store", "date"], suffixes=("", "_pipeline"), validate="1:1")
    assert len(merged) == len(plan)
    assert merged["sales_pred"].tolist() == pytest.approx(merged["sales_pred_pipeline"].tolist(), rel=1e-6, abs=1e-6)
    assert merged["customers_pred"].tolist() == pytest.approx(merged["customers_pred_pipeline"].tolist(), rel=1e-6,
                                                              abs=1e-6)


@pytest.mark.parametrize("body, where", [
    ({"date": "2015-08-03"}, ["body", "store"]),
    ({"store": 1}, ["body", "date"]),
    ({"store": 1, "date": "2015-02-30"}, ["body", "date"]),
    ({"store": 1, "date": "1900-01-01"}, ["body", "date"]),
    ({"store": -4, "date": "2015-08-03"}, ["body", "store"]),
    ({"store": 1, "date": "2015-08-03", "state_holiday": "x"}, ["body", "state_holiday"]),
    ({"store": 1, "date": "2015-08-03", "promo": "often"}, ["body", "promo"]),
    ({"store": 1, "date": "2015-08-03", "open": 7}, ["body", "open"]),
    ({"store": 1, "date": "2015-08-03", "price": 3}, ["body", "price"]),
    ({"store": 1, "date": "2015-08-03", "day_of_week": 5}, ["body"]),
    ([{"store": 1, "date": "2015-08-03"}, {"store": "two", "date": "2015-08-03"}], ["body", 1, "store"]),
    ([], ["body"]),
    ("store 1 tomorrow", ["body"]),
    (42, ["body"]),
])
def test_predict_bad_bodies_are_422_with_the_field_named(client, body, where):
    r = client.post("/predict", json=body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert any(d["loc"] == where for d in detail), detail
    assert all("PredictRow" not in str(d["loc"]) for d in detail), "union internals leak into the message"


def test_predict_rejects_too_many_rows_and_broken_json(client):
    limit = client.app.state.settings.api_predict_max_rows
    too_many = [{"store": 1, "date": "2015-08-03"}] * (limit + 1)
    r = client.post("/predict", json=too_many)
    assert r.status_code == 413 and f"at most {limit}" in r.json()["detail"], r.text
    assert "API_PREDICT_MAX_ROWS" in r.json()["detail"]
    r = client.post("/predict", content=b'{"store": 1,', headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"


def test_predict_unknown_store_or_version_is_404(client, copy):
    r = client.post("/predict", json=[{"store": 1, "date": "2015-08-03"}, {"store": 77, "date": "2015-08-03"}])
    assert r.status_code == 404 and "[77]" in r.json()["detail"]
    r = client.post("/predict", params={"model_version": "20990101T000000000000Z"}, json={"store": 1, "date": "2015-08-03"})
    assert r.status_code == 404
    r = client.post("/predict", params={"model_version": latest(copy, "lstm")}, json={"store": 1, "date": "2015-08-03"})
    assert r.status_code == 200 and r.json()["model"] == "lstm"


def test_predict_with_an_older_random_forest(versions_client, older_versions):
    _, path, _ = older_versions
    old = latest(path, "random_forest") + "-older"
    r = versions_client.post("/predict", params={"model_version": old}, json={"store": 1, "date": "2015-08-03"})
    assert r.status_code == 200 and r.json()["model_version"] == old


# ------------------------------------------------------------------------------------------ availability


@pytest.mark.parametrize("mode", ["cached", "per_request"])
def test_nothing_published_yet_is_503(tmp_path, mode):
    with TestClient(create_app(tmp_path / "published", mode=mode), raise_server_exceptions=False) as c:
        for method, url, kw in [("get", "/health", {}), ("get", "/stores", {}), ("get", "/stores/1/forecast", {}),
                                ("get", "/models", {}),
                                ("post", "/predict", {"json": {"store": 1, "date": "2015-08-03"}})]:
            r = getattr(c, method)(url, **kw)
            assert r.status_code == 503, (url, r.text)
            assert "Nothing is published yet" in r.json()["detail"] and str(tmp_path) not in r.text
        # validation still comes first
        assert c.get("/stores/1/forecast?start=2015-08-10&end=2015-08-01").status_code == 422


def test_a_copy_without_the_needed_tables_is_503_not_500(pipeline_warehouse, tmp_path):
    version = publish_warehouse(pipeline_warehouse.build_warehouse, tmp_path / "pub", source_run="r", schemas=("ml",))
    with TestClient(create_app(version.path), raise_server_exceptions=False) as c:
        assert c.get("/health").status_code == 200
        r = c.get("/stores")
        assert r.status_code == 503 and "dim_stores" in r.json()["detail"]
        r = c.get("/models")
        assert r.status_code == 503 and "dim_model_versions" in r.json()["detail"]


def test_a_missing_model_artifact_is_503(pipeline_warehouse, tmp_path):
    build = pipeline_warehouse.copy_build(tmp_path / "build.duckdb")
    with duckdb.connect(str(build)) as con:
        con.execute("UPDATE ml.model_registry SET artifact_path = 'nowhere/random_forest' WHERE model = 'random_forest'")
    version = publish_warehouse(build, tmp_path / "pub", source_run="r")
    with TestClient(create_app(version.path), raise_server_exceptions=False) as c:
        r = c.post("/predict", json={"store": 1, "date": "2015-08-03"})
        assert r.status_code == 503 and "artifact" in r.json()["detail"]


@pytest.mark.parametrize("mode", ["cached", "per_request"])
def test_a_new_publication_is_served_on_the_next_request(pipeline_warehouse, older_versions, tmp_path, mode):
    last_store = pipeline_warehouse.n_stores
    first_build = pipeline_warehouse.copy_build(tmp_path / "build.duckdb")
    with duckdb.connect(str(first_build)) as con:
        con.execute("DELETE FROM marts.dim_stores WHERE store_id = ?", [last_store])
    first = publish_warehouse(first_build, tmp_path / "pub", source_run="run-1")
    with TestClient(create_app(first.path, mode=mode)) as c:
        assert c.get("/health").json()["published_version"] == first.version_id
        assert c.get("/stores/1/forecast").json()["model_version"] == champion(first.path)[1]
        assert c.get(f"/stores/{last_store}").status_code == 404
        second = publish_warehouse(older_versions[0], tmp_path / "pub", source_run="run-2")
        assert c.get("/health").json()["published_version"] == second.version_id
        assert c.get("/models").json()["champion"]["model_version"] == champion(second.path)[1]
        assert c.get("/stores/1/forecast").json()["model_version"] == champion(second.path)[1]
        assert c.get(f"/stores/{last_store}").status_code == 200  # store ids are cached per version, not forever


def test_no_500_on_odd_input(client):
    odd = ["/stores/1/forecast?start=&end=", "/stores/1/forecast?model=", "/stores/%20",
           "/stores/1.5", "/stores/1/forecast?start=2015-08-01T10:00:00", "/stores/1/forecast?model_version=",
           "/stores/1/forecast?start=0001-01-01&end=9999-12-31", "/stores/-1/forecast/monthly",
           "/stores/1/forecast/monthly?start=0001-01-01&end=9999-12-31",
           "/stores/1/forecast?model=random_forest&model=lstm", "/stores/1e3", "/models?model=Baseline"]
    for url in odd:
        r = client.get(url)
        assert r.status_code in (200, 404, 422), (url, r.status_code, r.text)
    for body in [None, {"rows": []}, [None], [[]], {"store": True, "date": "2015-08-03"},
                 {"store": 1, "date": 20150803}, {"store": 1.7, "date": "2015-08-03"}]:
        r = client.post("/predict", json=body)
        assert r.status_code in (200, 404, 422), (body, r.status_code, r.text)


def test_stores_offset_at_bigint_max_is_an_empty_page(client):
    r = client.get("/stores", params={"offset": 2**63 - 1})
    assert r.status_code == 200 and r.json() == []


def test_a_non_json_body_is_a_json_422_not_500(client):
    for content, ctype in [(b"store=1&date=2015-08-03", "text/plain"), (b"\xff\xfe\x00", "application/octet-stream"),
                           (b"store=1", "application/x-www-form-urlencoded"), (b"", "text/plain")]:
        r = client.post("/predict", content=content, headers={"content-type": ctype})
        assert r.status_code in (415, 422), (ctype, r.status_code, r.text)
        assert r.headers["content-type"] == "application/json" and r.json()["detail"], r.text


def test_a_422_never_echoes_a_huge_input_whole(client):
    huge = "x" * 100_000
    r = client.post("/predict", content=huge.encode(), headers={"content-type": "text/plain"})
    assert r.status_code == 422 and len(r.content) < 2_000, len(r.content)
    r = client.post("/predict", json={"store": huge, "date": "2015-08-03"})
    assert r.status_code == 422 and len(r.content) < 2_000, len(r.content)
    assert any(d["loc"] == ["body", "store"] for d in r.json()["detail"])


def test_bodies_over_the_cap_are_413_before_parsing(copy, tmp_path):
    from settings import Settings

    settings = Settings(data_dir=tmp_path, api_max_body_bytes=1_000)
    with TestClient(create_app(copy, settings=settings), raise_server_exceptions=False) as c:
        small = [{"store": 1, "date": "2015-08-03"}]
        assert c.post("/predict", json=small).status_code == 200
        big = [{"store": 1, "date": "2015-08-03"}] * 100  # ~3.3 kB, declared in Content-Length
        r = c.post("/predict", json=big)
        assert r.status_code == 413 and "API_MAX_BODY_BYTES" in r.json()["detail"], r.text
        # streamed (chunked, no Content-Length): counted as it arrives
        r = c.post("/predict", content=iter([b"[" + b'{"store": 1, "date": "2015-08-03"},' * 50, b"{}]"]),
                   headers={"content-type": "application/json"})
        assert r.status_code == 413, r.text
        # not-JSON and huge is 413 too, before anything tries to read it
        r = c.post("/predict", content=b"x" * 5_000, headers={"content-type": "text/plain"})
        assert r.status_code == 413
    assert Settings.from_env({"API_MAX_BODY_BYTES": "2048"}).api_max_body_bytes == 2048
    assert Settings.from_env({}).api_max_body_bytes == 1_048_576


def test_predict_with_an_unknown_model_is_422(client):
    for name in ["xgboost", "prophet"]:
        r = client.post("/predict", params={"model": name}, json={"store": 1, "date": "2015-08-03"})
        assert r.status_code == 422, (name, r.text)
        detail = r.json()["detail"]
        assert any(d["loc"] == ["query", "model"] and all(m in d["msg"] for m in LIVE_MODELS) for d in detail), detail
    r = client.post("/predict", params={"model": "random_forest"}, json={"store": 1, "date": "2015-08-03"})
    assert r.status_code == 200 and r.json()["model"] == "random_forest"
