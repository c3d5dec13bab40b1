"""The forecast API (FastAPI TestClient) on a small published sample warehouse.

The sample follows the platform's table contracts (the ml tables are written through the write-back
module) and carries a random forest fitted by forecasting.models.random_forest; the end-to-end test on the
real pipeline's warehouse lives with the pipeline tests.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from serving.api import MAX_PREDICT_ROWS, create_app
from warehouse.publish import publish_warehouse
from serving.sample import build_sample_warehouse

N_STORES = 4


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    build = root / "build.duckdb"
    info = build_sample_warehouse(build, n_stores=N_STORES, models_dir=root / "models")
    version = publish_warehouse(build, root / "published", source_run="test-api")
    build.rename(root / "build-moved-away.duckdb")  # the API must not need the build warehouse
    return info, version, root


@pytest.fixture(scope="module", params=["cached", "per_request"])
def client(sample, request):
    _, version, _ = sample
    with TestClient(create_app(version.path, mode=request.param), raise_server_exceptions=False) as c:
        yield c


def published(sample, sql, params=None):
    _, version, _ = sample
    with duckdb.connect(":memory:") as con:
        con.execute(f"ATTACH '{version.path}' AS p (READ_ONLY); USE p")
        return con.execute(sql, params or []).df()


# ------------------------------------------------------------------------------------------ reads


def test_health(client, sample):
    _, version, _ = sample
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["published_version"] == version.version_id
    assert body["source_run"] == "test-api" and body["published_path"] == str(version.path)
    assert dt.datetime.fromisoformat(body["published_at"]) == version.published_at


def test_stores(client):
    r = client.get("/stores")
    assert r.status_code == 200
    stores = r.json()
    assert [s["store_id"] for s in stores] == list(range(1, N_STORES + 1))
    assert {"store_type", "assortment", "competition_distance_m", "promo_interval"} <= set(stores[0])
    assert [s["store_id"] for s in client.get("/stores?limit=2&offset=1").json()] == [2, 3]
    one = client.get("/stores/2")
    assert one.status_code == 200 and one.json() == stores[1]


@pytest.mark.parametrize("url", ["/stores/999", "/stores/999/forecast", "/stores/999/forecast/monthly"])
def test_unknown_store_is_404(client, url):
    r = client.get(url)
    assert r.status_code == 404
    assert "Store 999 not found" in r.json()["detail"]


def test_forecast_defaults_to_the_champion(client, sample):
    info, _, _ = sample
    r = client.get("/stores/1/forecast")
    assert r.status_code == 200
    body = r.json()
    # the sample's latest random forest has the best validation RMSPE
    assert (body["model"], body["model_version"], body["is_champion"]) == \
        ("random_forest", info.latest("random_forest"), True)
    rows = body["rows"]
    assert len(rows) == 42
    assert rows[0]["date"] == f"{info.horizon[0]:%Y-%m-%d}" and rows[-1]["date"] == f"{info.horizon[1]:%Y-%m-%d}"
    assert all(x["sales_lower"] <= x["sales_pred"] <= x["sales_upper"] for x in rows)
    assert all(x["sales_pred"] == 0 for x in rows if x["is_open"] is False)
    expected = published(sample, "SELECT forecast_date, sales_pred FROM ml.store_sales_forecast WHERE store_id = 1 "
                                 "AND model_version = ? ORDER BY forecast_date", [info.latest("random_forest")])
    assert [x["sales_pred"] for x in rows] == expected["sales_pred"].tolist()


def test_forecast_filters_and_model_choice(client, sample):
    info, _, _ = sample
    r = client.get("/stores/2/forecast", params={"start": "2015-08-03", "end": "2015-08-09", "model": "lstm"})
    assert r.status_code == 200
    body = r.json()
    assert (body["model"], body["model_version"], body["is_champion"]) == ("lstm", info.latest("lstm"), False)
    assert [x["date"] for x in body["rows"]] == [f"2015-08-{d:02d}" for d in range(3, 10)]
    old = info.versions["baseline"][0]
    r = client.get("/stores/2/forecast", params={"model_version": old, "end": "2015-08-01"})
    assert r.status_code == 200 and r.json()["model"] == "baseline" and r.json()["model_version"] == old
    assert len(r.json()["rows"]) == 1
    assert client.get("/stores/2/forecast", params={"start": "2030-01-01"}).json()["rows"] == []


def test_monthly_forecast_adds_up_the_days(client):
    daily = client.get("/stores/3/forecast").json()
    monthly = client.get("/stores/3/forecast/monthly").json()
    assert monthly["model_version"] == daily["model_version"]
    by_month: dict[str, float] = {}
    for row in daily["rows"]:
        by_month[row["date"][:7] + "-01"] = by_month.get(row["date"][:7] + "-01", 0.0) + row["sales_pred"]
    assert [m["month_start"] for m in monthly["rows"]] == sorted(by_month)
    for m in monthly["rows"]:
        assert m["sales_pred"] == pytest.approx(by_month[m["month_start"]])
        assert m["sales_lower"] <= m["sales_pred"] <= m["sales_upper"]
    assert sum(m["n_days"] for m in monthly["rows"]) == 42


def test_models(client, sample):
    info, _, _ = sample
    body = client.get("/models").json()
    assert body["champion"] == {"model": "random_forest", "model_version": info.latest("random_forest"),
                                "validation_rmspe": 0.12, "mean_rmspe": 0.12}
    assert len(body["models"]) == 6
    latest = client.get("/models", params={"latest_only": True}).json()["models"]
    assert {(m["model"], m["model_version"]) for m in latest} == {(k, info.latest(k)) for k in info.versions}
    rf = [m for m in latest if m["model"] == "random_forest"][0]
    assert rf["is_champion"] and rf["is_latest"] and rf["has_forecasts"]
    assert set(rf["metrics"]["validation"]) == {"rmspe", "rmse", "mae", "mape"}
    assert isinstance(rf["params"], dict)
    only = client.get("/models", params={"model": "lstm"}).json()["models"]
    assert {m["model"] for m in only} == {"lstm"} and len(only) == 2


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
    ("/models?latest_only=perhaps", ["query", "latest_only"]),
])
def test_bad_requests_are_422_with_the_field_named(client, url, where):
    r = client.get(url)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert any(d["loc"] == where and d["msg"] for d in detail), detail


@pytest.mark.parametrize("params, fragment", [
    ({"model": "xgboost"}, "models with forecasts: ['baseline', 'lstm', 'random_forest']"),
    ({"model_version": "20990101T000000Z"}, "not found"),
    ({"model": "lstm", "model_version": "__VERSION_OF_BASELINE__"}, "of model lstm not found"),
])
def test_unknown_model_versions_are_404(client, sample, params, fragment):
    info, _, _ = sample
    params = {k: (info.latest("baseline") if v == "__VERSION_OF_BASELINE__" else v) for k, v in params.items()}
    r = client.get("/stores/1/forecast", params=params)
    assert r.status_code == 404 and fragment in r.json()["detail"]


def test_openapi_docs(client):
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/stores", "/stores/{store_id}", "/stores/{store_id}/forecast",
            "/stores/{store_id}/forecast/monthly", "/models", "/predict"} <= set(paths)


# ------------------------------------------------------------------------------------------ predict


def test_predict_one_row(client, sample):
    info, _, _ = sample
    r = client.post("/predict", json={"store": 1, "date": "2015-08-03", "promo": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "random_forest" and body["model_version"] == info.latest("random_forest")
    [p] = body["predictions"]
    assert p["store"] == 1 and p["date"] == "2015-08-03" and p["open"] is True
    assert p["sales_pred"] > 0 and p["customers_pred"] > 0


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


def test_predict_matches_the_model_on_the_feature_mart(client, sample):
    """Features built by the API for the plan's store-days equal the mart's: same predictions."""
    from forecasting.features import prepare_frame
    from forecasting.models import random_forest

    info, _, _ = sample
    plan = published(sample, "SELECT * FROM marts.fct_store_daily_features WHERE NOT is_history "
                             "ORDER BY store_id, sale_date")
    fitted = random_forest.load(info.artifact_dirs[info.latest("random_forest")])
    expected = random_forest.predict(fitted, None, prepare_frame(plan))
    body = [{"store": int(r.store_id), "date": f"{r.sale_date:%Y-%m-%d}", "open": bool(r.is_open),
             "promo": bool(r.is_promo), "state_holiday": r.state_holiday, "school_holiday": bool(r.is_school_holiday)}
            for r in plan.itertuples()][::-1]  # reversed: order must not matter
    r = client.post("/predict", json=body)
    assert r.status_code == 200, r.text
    got = pd.DataFrame(r.json()["predictions"])[::-1].reset_index(drop=True)
    assert got["sales_pred"].tolist() == pytest.approx(expected["sales_pred"].tolist(), rel=1e-9)
    assert got["customers_pred"].tolist() == pytest.approx(expected["customers_pred"].tolist(), rel=1e-9)


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
    too_many = [{"store": 1, "date": "2015-08-03"}] * (MAX_PREDICT_ROWS + 1)
    assert client.post("/predict", json=too_many).status_code == 422
    r = client.post("/predict", content=b'{"store": 1,', headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"


def test_predict_unknown_store_or_version_is_404(client, sample):
    info, _, _ = sample
    r = client.post("/predict", json=[{"store": 1, "date": "2015-08-03"}, {"store": 77, "date": "2015-08-03"}])
    assert r.status_code == 404 and "[77]" in r.json()["detail"]
    r = client.post("/predict", params={"model_version": info.latest("lstm")}, json={"store": 1, "date": "2015-08-03"})
    assert r.status_code == 404
    old = info.versions["random_forest"][0]
    r = client.post("/predict", params={"model_version": old}, json={"store": 1, "date": "2015-08-03"})
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
            assert "No published warehouse" in r.json()["detail"]
        # validation still comes first
        assert c.get("/stores/1/forecast?start=2015-08-10&end=2015-08-01").status_code == 422


def test_a_copy_without_the_needed_tables_is_503_not_500(tmp_path):
    build_sample_warehouse(tmp_path / "b.duckdb", n_stores=2, fit_random_forest=False)
    version = publish_warehouse(tmp_path / "b.duckdb", tmp_path / "pub", source_run="r", schemas=("ml",))
    with TestClient(create_app(version.path), raise_server_exceptions=False) as c:
        r = c.get("/stores")
        assert r.status_code == 503 and "dim_stores" in r.json()["detail"]
        assert c.get("/models").status_code == 200


def test_a_missing_model_artifact_is_503(tmp_path):
    build_sample_warehouse(tmp_path / "b.duckdb", n_stores=2, fit_random_forest=False)
    version = publish_warehouse(tmp_path / "b.duckdb", tmp_path / "pub", source_run="r")
    with TestClient(create_app(version.path), raise_server_exceptions=False) as c:
        r = c.post("/predict", json={"store": 1, "date": "2015-08-03"})
        assert r.status_code == 503 and "artifact" in r.json()["detail"]


@pytest.mark.parametrize("mode", ["cached", "per_request"])
def test_a_new_publication_is_served_on_the_next_request(tmp_path, mode):
    build = tmp_path / "b.duckdb"
    first_info = build_sample_warehouse(build, n_stores=2, fit_random_forest=False)
    first = publish_warehouse(build, tmp_path / "pub", source_run="run-1")
    with TestClient(create_app(first.path, mode=mode)) as c:
        assert c.get("/health").json()["published_version"] == first.version_id
        assert c.get("/models").json()["champion"]["model_version"] == first_info.latest("random_forest")
        second_info = build_sample_warehouse(build, n_stores=3, fit_random_forest=False, generation=1)
        second = publish_warehouse(build, tmp_path / "pub", source_run="run-2")
        assert c.get("/health").json()["published_version"] == second.version_id
        assert c.get("/models").json()["champion"]["model_version"] == second_info.latest("random_forest")
        assert c.get("/stores/3").status_code == 200  # store ids are cached per version, not forever


def test_no_500_on_odd_input(client):
    odd = ["/stores/1/forecast?start=&end=", "/stores/1/forecast?model=", "/stores/%20",
           "/stores/1.5", "/stores/1/forecast?start=2015-08-01T10:00:00", "/stores/1/forecast?model_version=",
           "/stores/1/forecast?start=0001-01-01&end=9999-12-31", "/stores/-1/forecast/monthly",
           "/stores/1/forecast?model=random_forest&model=lstm", "/stores/1e3", "/models?model=Baseline"]
    for url in odd:
        r = client.get(url)
        assert r.status_code in (200, 404, 422), (url, r.status_code, r.text)
    for body in [None, {"rows": []}, [None], [[]], {"store": True, "date": "2015-08-03"},
                 {"store": 1, "date": 20150803}, {"store": 1.7, "date": "2015-08-03"}]:
        r = client.post("/predict", json=body)
        assert r.status_code in (200, 404, 422), (body, r.status_code, r.text)


@pytest.mark.parametrize("with_champion_view", [True, False])
def test_the_champion_is_the_platforms(tmp_path, with_champion_view):
    """Lowest mean RMSPE over validation and backtest folds among the latest versions: the model of
    ml.champion_forecast when published, else the same rule computed by the API."""
    build = tmp_path / "b.duckdb"
    info = build_sample_warehouse(build, n_stores=2, fit_random_forest=False)
    with duckdb.connect(str(build)) as con:  # the random forest's backtest is poor: mean 0.31 > lstm's 0.14
        con.execute("INSERT INTO ml.model_metrics (model, model_version, split, metric, value, created_at) "
                    "VALUES ('random_forest', ?, 'backtest_1', 'rmspe', 0.5, now())", [info.latest("random_forest")])
        if not with_champion_view:
            con.execute("DROP VIEW IF EXISTS ml.champion_forecast")
    version = publish_warehouse(build, tmp_path / "pub", source_run="r")
    assert ("ml.champion_forecast" in version.tables) == with_champion_view
    with TestClient(create_app(version.path)) as c:
        champion = c.get("/models").json()["champion"]
        assert (champion["model"], champion["model_version"]) == ("lstm", info.latest("lstm"))
        assert champion["mean_rmspe"] == pytest.approx(0.14) and champion["validation_rmspe"] == pytest.approx(0.14)
        body = c.get("/stores/1/forecast").json()
        assert (body["model"], body["is_champion"]) == ("lstm", True)
