"""`make bi`: Apache Superset, in its own virtualenv, serves the dashboard kept in bi/dashboard/ from the published copy.

The BI virtualenv is installed once (`make bi-install`, several minutes; kept in .venv-bi between runs); the test
skips when it cannot be installed (no package index). Superset is started the way `make bi` starts it
(``bi/start.py``: set up, import the dashboard, serve) on a free loopback port with a private DATA_DIR holding a
publication of the session pipeline's build warehouse. Every chart's saved query runs through Superset's API, a
headless chromium screenshots the dashboard (test artifact ``superset-dashboard.png``), and a publication made
while Superset is serving shows in its next query.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.browser import By, WebDriverWait, artifacts_dir, chromium, free_port, needs_browser
from warehouse.publish import publish_warehouse

REPO = Path(__file__).resolve().parents[1]
BI_PYTHON = REPO / ".venv-bi" / "bin" / "python"
DASHBOARD_SLUG = "rossmann-forecasts"
N_CHARTS = 9
ADMIN = {"username": "admin", "password": "superset-test-admin"}


@pytest.fixture(scope="module")
def bi_venv() -> Path:
    """Superset's virtualenv, installed by `make bi-install` (once; the Makefile skips an up-to-date install)."""
    try:
        proc = subprocess.run(["make", "-C", str(REPO), "bi-install"], capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        pytest.skip("`make bi-install` did not finish within 30 minutes")
    if proc.returncode or not BI_PYTHON.exists():
        pytest.skip(f"Superset's virtualenv could not be installed: {(proc.stderr or proc.stdout)[-500:]}")
    return BI_PYTHON


@pytest.fixture(scope="module")
def superset(bi_venv, pipeline_warehouse, tmp_path_factory):
    """Superset serving a private publication of the pipeline's build: (base URL, DATA_DIR, the build copy)."""
    root = tmp_path_factory.mktemp("superset")
    data_dir = root / "data"
    build = pipeline_warehouse.copy_build(root / "build.duckdb")
    publish_warehouse(build, data_dir / "published", source_run="superset-test-1")
    port = free_port()
    env = {**os.environ, "DATA_DIR": str(data_dir), "BI_PORT": str(port), "BI_ADMIN_USER": ADMIN["username"],
           "BI_ADMIN_PASSWORD": ADMIN["password"]}
    env.pop("PUBLISHED_WAREHOUSE", None)
    log = (root / "superset.log").open("w")
    server = subprocess.Popen([str(bi_venv), str(REPO / "bi" / "start.py")], env=env, cwd=REPO, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600  # set-up (migrations, import) takes 1-2 minutes on 2 busy cores
        while not _healthy(base):
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"Superset did not start:\n{(root / 'superset.log').read_text()[-4000:]}")
            time.sleep(2)
        yield base, data_dir, build
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


def _healthy(base: str) -> bool:
    try:
        return requests.get(f"{base}/health", timeout=5).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def api(superset) -> requests.Session:
    """A session authenticated with Superset's API (JWT from /api/v1/security/login)."""
    base = superset[0]
    session = requests.Session()
    response = session.post(f"{base}/api/v1/security/login", json={**ADMIN, "provider": "db", "refresh": False},
                            timeout=30)
    assert response.status_code == 200, response.text
    session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    return session


def dashboard_charts(base: str, api: requests.Session) -> dict[str, int]:
    response = api.get(f"{base}/api/v1/dashboard/{DASHBOARD_SLUG}/charts", timeout=30)
    assert response.status_code == 200, response.text
    return {chart["slice_name"]: chart["id"] for chart in response.json()["result"]}


def chart_rows(base: str, api: requests.Session, chart_id: int) -> list[dict]:
    """The chart's saved query (its query context) run by Superset against the published copy."""
    response = api.get(f"{base}/api/v1/chart/{chart_id}/data/", timeout=120)
    assert response.status_code == 200, response.text[:2000]
    return response.json()["result"][0]["data"]


def test_every_chart_of_the_dashboard_returns_rows(superset, api):
    base = superset[0]
    charts = dashboard_charts(base, api)
    assert len(charts) == N_CHARTS, sorted(charts)
    empty = [name for name, chart_id in charts.items() if not chart_rows(base, api, chart_id)]
    assert not empty, f"charts without rows: {empty}"

    # The forecast chart carries actuals, the forecast and its 80% band (lower <= forecast <= upper).
    rows = chart_rows(base, api, charts["Forecast vs actual per store (champion, 80% band)"])
    assert any(row["sales__obs"] is not None for row in rows)
    assert all(row["sales__yhat_lower"] - 1e-6 <= row["sales__yhat"] <= row["sales__yhat_upper"] + 1e-6
               for row in rows)


@needs_browser
def test_dashboard_renders_every_chart_with_data(superset):
    base = superset[0]
    with chromium(["--window-size=1600,2000"]) as driver:
        driver.get(f"{base}/login/")
        driver.find_element(By.ID, "username").send_keys(ADMIN["username"])
        driver.find_element(By.ID, "password").send_keys(ADMIN["password"])
        driver.find_element(By.CSS_SELECTOR, "input[type=submit], button[type=submit]").click()
        WebDriverWait(driver, 60).until(lambda d: "/login" not in d.current_url)
        driver.get(f"{base}/superset/dashboard/{DASHBOARD_SLUG}/?standalone=1")
        drawn = ".dashboard-chart canvas, .dashboard-chart table"  # ECharts draw on a canvas, tables as tables
        WebDriverWait(driver, 180).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, drawn)) >= N_CHARTS
            and not d.find_elements(By.CSS_SELECTOR, ".loading"))
        time.sleep(2)  # the charts' entry animations
        driver.save_screenshot(str(artifacts_dir() / "superset-dashboard.png"))
        errors = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".alert-danger, .ant-alert-error")]
        no_data = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".dashboard-chart .no-results")]
    assert not errors and not no_data, (errors, no_data)


def test_a_publication_while_superset_serves_shows_in_its_next_query(superset, api):
    base, data_dir, build = superset
    published_version = dashboard_charts(base, api)["Published version"]
    assert chart_rows(base, api, published_version)[0]["source_run"] == "superset-test-1"

    # Superset has read the copy; a new publication replaces it (rename) without waiting for Superset...
    version = publish_warehouse(build, data_dir / "published", source_run="superset-test-2")
    # ...and Superset's next query opens the new file.
    [row] = chart_rows(base, api, published_version)
    assert (row["source_run"], row["version_id"]) == ("superset-test-2", version.version_id)
