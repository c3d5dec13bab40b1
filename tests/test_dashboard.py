"""The Streamlit dashboard end to end in a real headless browser (Debian's chromium + chromedriver).

Streamlit serves the dashboard on a free loopback port over the warehouse the pipeline published
(tests/conftest.py); Selenium drives
the system chromedriver (no driver download). The page must show the chosen store's forecast chart; a
screenshot is saved under $TEST_ARTIFACTS_DIR (default $DATA_DIR/test-artifacts/). Skips when chromium,
chromedriver, selenium or streamlit is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
STORE = 3

pytest.importorskip("streamlit")
try:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover
    webdriver = None

from serving.reader import read_publication  # noqa: E402

needs_browser = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER and webdriver),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver) and selenium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def artifacts_dir() -> Path:
    default = Path(os.environ.get("DATA_DIR", REPO / "data")) / "test-artifacts"
    path = Path(os.environ.get("TEST_ARTIFACTS_DIR", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def dashboard(pipeline_warehouse, tmp_path_factory):
    root = tmp_path_factory.mktemp("dashboard")
    published = pipeline_warehouse.published
    port = free_port()
    env = {**os.environ, "PUBLISHED_WAREHOUSE": str(published),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    log = open(root / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "serving" / "dashboard.py"),
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
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1100", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def chart_drawn(driver) -> bool:
    """A Vega-Lite chart whose canvas (or svg) has been drawn with a real size."""
    for chart in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stVegaLiteChart"]'):
        for el in chart.find_elements(By.CSS_SELECTOR, "canvas, svg.marks"):
            if el.size["width"] > 200 and el.size["height"] > 150:
                return True
    return False


@needs_browser
def test_dashboard_shows_the_chosen_store_forecast_chart(dashboard, browser):
    url, published = dashboard
    browser.get(f"{url}/?store={STORE}&model=lstm")
    wait = WebDriverWait(browser, 90, poll_frequency=0.5)
    wait.until(lambda d: f"Store {STORE}: type" in d.find_element(By.TAG_NAME, "body").text)
    wait.until(chart_drawn)
    time.sleep(1.0)  # let the chart finish its first paint before the screenshot
    shot = artifacts_dir() / f"dashboard_store{STORE}.png"
    assert browser.save_screenshot(str(shot))
    print(f"\ndashboard screenshot: {shot}")
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Rossmann sales forecasts" in body
    assert "Forecast vs actual" in body and "Model accuracy" in body
    assert "Published version" in body and read_publication(published).source_run in body
    metrics = [m.text.split("\n") for m in browser.find_elements(By.CSS_SELECTOR, '[data-testid="stMetric"]')]
    assert ["Store", str(STORE)] in metrics and ["Model", "lstm"] in metrics, metrics
    assert "Traceback" not in body and "StreamlitAPIException" not in body

    from PIL import Image

    with Image.open(shot) as img:
        colours = img.convert("RGB").resize((200, 160)).getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 50, "the screenshot looks blank"


def test_dashboard_without_a_published_warehouse_says_so(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("PUBLISHED_WAREHOUSE", str(tmp_path / "nothing" / "warehouse.duckdb"))
    at = AppTest.from_file(str(REPO / "serving" / "dashboard.py"), default_timeout=60).run()
    assert not at.exception
    assert any("No published warehouse" in e.value for e in at.error)


def test_dashboard_pages_on_the_published_warehouse(pipeline_warehouse, monkeypatch):
    """Without a browser: Streamlit's AppTest runs the page on the pipeline's published copy; the model list
    starts with the champion of marts.dim_model_versions."""
    from streamlit.testing.v1 import AppTest

    from serving.reader import open_published

    monkeypatch.setenv("PUBLISHED_WAREHOUSE", str(pipeline_warehouse.published))
    with open_published(pipeline_warehouse.published) as con:
        champion = con.execute("SELECT model FROM marts.dim_model_versions WHERE is_champion").fetchall()[0][0]
    at = AppTest.from_file(str(REPO / "serving" / "dashboard.py"), default_timeout=120)
    at.query_params["store"] = str(STORE)
    at.run()
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Store"] == str(STORE) and metrics["Model"] == champion
    assert at.sidebar.selectbox[1].options[0] == f"{champion} (champion)"
