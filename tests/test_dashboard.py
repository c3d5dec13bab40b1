"""The Streamlit dashboard end to end in a real headless browser (Debian's chromium + chromedriver).

Streamlit serves the dashboard on a free loopback port over the warehouse the pipeline published
(tests/conftest.py), from the repository root so .streamlit/config.toml applies; Selenium drives the system
chromedriver (no driver download). Every tab of the store page and the chain overview must draw charts; a
screenshot of each is saved under $TEST_ARTIFACTS_DIR (default $DATA_DIR/test-artifacts/). Skips when
chromium, chromedriver, selenium or streamlit is missing. The AppTest tests run each page without a browser.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STORE = 3
APP = REPO / "serving" / "dashboard" / "app.py"
TABS = ["Forecast vs actual", "Monthly", "Model accuracy", "Insights"]

pytest.importorskip("streamlit")
from browser import By, WebDriverWait, artifacts_dir, chromium, free_port, needs_browser  # noqa: E402
from serving.reader import read_publication  # noqa: E402


@pytest.fixture(scope="module")
def dashboard(pipeline_warehouse, tmp_path_factory):
    root = tmp_path_factory.mktemp("dashboard")
    published = pipeline_warehouse.published
    port = free_port()
    env = {**os.environ, "PUBLISHED_WAREHOUSE": str(published),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    log = open(root / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP),
         "--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start:\n{(root / 'streamlit.log').read_text()}")
            time.sleep(0.3)
        yield url, published
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def browser():
    with chromium() as driver:
        yield driver


def chart_drawn(driver) -> bool:
    """A Vega-Lite chart whose canvas (or svg) has been drawn with a real size."""
    for chart in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stVegaLiteChart"]'):
        for el in chart.find_elements(By.CSS_SELECTOR, "canvas, svg.marks"):
            if el.size["width"] > 200 and el.size["height"] > 150:
                return True
    return False


def charts_drawn(driver) -> int:
    """Vega-Lite charts whose canvas (or svg) has been drawn with a real size."""
    return sum(any(el.size["width"] > 150 and el.size["height"] > 100
                   for el in chart.find_elements(By.CSS_SELECTOR, "canvas, svg.marks"))
               for chart in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stVegaLiteChart"]'))


def screenshot(driver, name: str) -> Path:
    from PIL import Image

    time.sleep(1.0)  # let the charts finish their first paint
    shot = artifacts_dir() / f"dashboard_{name}.png"
    assert driver.save_screenshot(str(shot))
    with Image.open(shot) as img:
        colours = img.convert("RGB").resize((200, 160)).getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 50, f"the {name} screenshot looks blank"
    return shot


@needs_browser
def test_dashboard_every_tab_and_the_chain_page_in_a_browser(dashboard, browser):
    url, published = dashboard
    browser.get(f"{url}/?store={STORE}&model=lstm")
    wait = WebDriverWait(browser, 90, poll_frequency=0.5)
    wait.until(lambda d: f"Store {STORE}: type" in d.find_element(By.TAG_NAME, "body").text)
    wait.until(charts_drawn)
    shots = [screenshot(browser, f"store{STORE}_daily")]
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Rossmann sales forecasts" in body and all(tab in body for tab in TABS)
    metrics = [m.text.split("\n") for m in browser.find_elements(By.CSS_SELECTOR, '[data-testid="stMetric"]')]
    assert ["Store", str(STORE)] in metrics and ["Model", "lstm"] in metrics, metrics
    assert any(m[0] == "Store RMSPE (validation)" and "vs chain" in m[-1] for m in metrics), metrics
    # no server paths, run ids or Streamlit's developer chrome
    page = browser.page_source
    assert read_publication(published).source_run not in page and str(published) not in page
    assert str(published.parent) not in body and "Deploy" not in body
    assert not [b for b in browser.find_elements(By.CSS_SELECTOR, '[data-testid="stAppDeployButton"], '
                                                 '[data-testid="stMainMenu"]') if b.is_displayed()]
    for tab in TABS[1:]:
        browser.find_element(By.XPATH, f'//*[@role="tab"][.//*[text()="{tab}"]]').click()
        wait.until(lambda d, t=tab: d.find_element(
            By.XPATH, f'//*[@role="tab"][.//*[text()="{t}"]]').get_attribute("aria-selected") == "true")
        wait.until(charts_drawn)  # the charts of hidden tabs have no size
        shots.append(screenshot(browser, f"store{STORE}_{tab.lower().replace(' ', '_')}"))
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Traceback" not in body and "StreamlitAPIException" not in body

    browser.get(f"{url}/?page=chain")
    wait.until(lambda d: "Least accurate stores recently" in d.find_element(By.TAG_NAME, "body").text)
    wait.until(lambda d: charts_drawn(d) >= 3)
    shots.append(screenshot(browser, "chain_overview"))
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Total forecast, whole horizon" in body and "Largest expected change" in body
    print("\ndashboard screenshots:", *shots, sep="\n  ")


def test_dashboard_without_a_published_warehouse_says_so(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("PUBLISHED_WAREHOUSE", str(tmp_path / "nothing" / "warehouse.duckdb"))
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception
    assert any("No published warehouse" in e.value for e in at.error)


def _app(pipeline_warehouse, monkeypatch, **params):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("PUBLISHED_WAREHOUSE", str(pipeline_warehouse.published))
    at = AppTest.from_file(str(APP), default_timeout=120)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception and not at.error
    return at


def _query(pipeline_warehouse, sql: str, params: list | None = None):
    from serving.reader import open_published

    with open_published(pipeline_warehouse.published) as con:
        return con.execute(sql, params or []).fetchall()


def test_store_page_tabs_on_the_published_warehouse(pipeline_warehouse, monkeypatch):
    """Without a browser: the store page on the pipeline's published copy. The model list starts with the
    champion of marts.dim_model_versions; the store's RMSPE and the chain's are those of the marts."""
    champion = _query(pipeline_warehouse, "SELECT model FROM marts.dim_model_versions WHERE is_champion")[0][0]
    at = _app(pipeline_warehouse, monkeypatch, store=str(STORE))
    metrics = {m.label: m for m in at.metric}
    assert metrics["Store"].value == str(STORE) and metrics["Model"].value == champion
    assert at.sidebar.selectbox[1].options[0] == f"{champion} (champion)"
    store_rmspe, chain_rmspe = _query(pipeline_warehouse, """
        SELECT store_rmspe, chain_rmspe FROM marts.rpt_store_accuracy
        WHERE store_id = ? AND model = ? AND is_latest_version AND split = 'validation'""", [STORE, champion])[0]
    metric_rmspe = _query(pipeline_warehouse, """
        SELECT value FROM ml.model_metrics JOIN marts.dim_model_versions USING (model, model_version)
        WHERE is_champion AND split = 'validation' AND metric = 'rmspe'""")[0][0]
    assert abs(chain_rmspe - metric_rmspe) < 1e-9  # the mart's chain-wide figure is the model's metric
    assert metrics["Store RMSPE (validation)"].value == f"{store_rmspe:.3f}"
    assert metrics["Chain RMSPE (validation)"].value == f"{chain_rmspe:.3f}"
    assert metrics["Store RMSPE (validation)"].delta == f"{store_rmspe - chain_rmspe:+.3f} vs chain"
    assert [t.label for t in at.tabs] == TABS
    n_insights = _query(pipeline_warehouse, "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'marts' "
                                            "AND table_name LIKE 'insight_%'")[0][0]
    assert n_insights > 0 and len(at.get("vega_lite_chart")) == 3 + n_insights  # daily, monthly, accuracy + insights
    captions = " ".join(c.value for c in at.caption)
    assert "Published version" not in captions and "Data published" in captions
    # the plan's last month is partial (the horizon ends mid-month in the fixture) and is labelled so
    partial = _query(pipeline_warehouse, """
        SELECT strftime(month_start, '%b %Y'), n_days, dayofmonth(last_day(month_start))
        FROM marts.fct_sales_forecast_monthly WHERE store_id = ? AND model = ? AND is_latest_version AND is_served
          AND n_days < dayofmonth(last_day(month_start))""", [STORE, champion])
    assert partial, "the fixture's horizon should end inside a month"
    assert all(f"{m} ({n} of {d} days)" in captions for m, n, d in partial), captions


def test_store_page_chart_overlays_past_forecasts_on_actuals(pipeline_warehouse, monkeypatch):
    """The daily chart's data hold the actual history, the latest version's backtest forecasts over it (with
    the band) and the future forecast after it."""
    import pandas as pd
    import pyarrow as pa

    at = _app(pipeline_warehouse, monkeypatch, store=str(STORE), model="random_forest")
    chart = at.get("vega_lite_chart")[0].proto
    frames = [pa.ipc.open_stream(ds.data.data).read_pandas() for ds in chart.datasets]
    rows = pd.concat([f for f in frames if "series" in f.columns], ignore_index=True).to_dict("records")
    series = {r.get("series") for r in rows}
    assert {"actual", "past forecast (backtest)", "forecast"} <= series
    past = [r for r in rows if r.get("series") == "past forecast (backtest)"]
    future = [r for r in rows if r.get("series") == "forecast"]
    assert all(r["sales_lower"] <= r["sales_pred"] + 1e-6 <= r["sales_upper"] + 2e-6 for r in past)
    assert max(r["date"] for r in past) < min(r["date"] for r in future)
    n_past = _query(pipeline_warehouse, """
        SELECT count(*) FROM marts.fct_backtest_forecast WHERE store_id = ? AND model = 'random_forest'
          AND is_latest_version AND forecast_date > (SELECT max(sale_date) FROM marts.fct_store_daily_features
                                                     WHERE store_id = ? AND is_history) - 140""", [STORE, STORE])[0][0]
    assert len(past) == n_past > 0


def test_chain_overview_page(pipeline_warehouse, monkeypatch):
    at = _app(pipeline_warehouse, monkeypatch, page="chain")
    metrics = {m.label: m.value for m in at.metric}
    total = _query(pipeline_warehouse, """
        SELECT sum(sales_pred) FROM marts.fct_sales_forecast JOIN marts.dim_model_versions USING (model, model_version)
        WHERE is_champion""")[0][0]
    assert metrics["Total forecast, whole horizon"] == f"{total:,.0f}"
    assert metrics["Stores"] == str(pipeline_warehouse.n_stores)
    assert [s.value for s in at.subheader] == ["Largest expected change", "Least accurate stores recently"]
    worst = _query(pipeline_warehouse, """
        SELECT store_id FROM marts.rpt_store_accuracy WHERE is_champion AND split = 'validation'
        ORDER BY store_rmspe DESC NULLS LAST LIMIT 1""")[0][0]
    assert at.dataframe[1].value.iloc[0]["store id"] == worst
    assert len(at.get("vega_lite_chart")) == 3
