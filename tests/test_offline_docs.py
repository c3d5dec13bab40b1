"""The documentation pages render with no network: the API's /docs (Swagger UI) and /redoc, the Great Expectations
Data Docs the pipeline wrote, and dbt's docs site.

Headless Debian chromium (as tests/test_dashboard.py drives it) gets a proxy that does not exist, so every
request that leaves loopback fails; the browser's own network chatter is off and its profile is new. Each page
must show real content (operations, suite names, models), and its network log must hold no request for anything
but the loopback server, ``file:`` and inline ``data:`` URLs. Skips without chromium, chromedriver or selenium.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest

from browser import By, WebDriverWait, artifacts_dir, chromium, free_port, needs_browser
from expectations.offline_docs import localise_html
from expectations.suites import SUITES


LOCAL_SCHEMES = ("file", "data", "blob", "about", "chrome")  # chrome: the new profile's own start page


def data_docs(pipeline_warehouse) -> Path:
    return pipeline_warehouse.data_dir / "reports" / "data_docs"


# ------------------------------------------------------------------------------------------ without a browser


def test_pipeline_data_docs_load_nothing_from_the_internet(pipeline_warehouse):
    site = data_docs(pipeline_warehouse)
    pages = list(site.rglob("*.html"))
    assert len(pages) > len(SUITES), "the index, a page per suite and per validation run"
    for page in pages:
        html = page.read_text()
        for external in ("cdn.jsdelivr.net", "unpkg.com", "cdnjs.cloudflare.com", "bootstrapcdn.com",
                         "code.jquery.com", "great-expectations-web-assets"):
            assert external not in html, f"{page.relative_to(site)} still loads from {external}"
    for asset in ("jquery/jquery.min.js", "bootstrap/js/bootstrap.bundle.min.js", "bootstrap-table/bootstrap-table.min.js",
                  "font-awesome/css/all.min.css", "font-awesome/webfonts/fa-solid-900.woff2"):
        assert (site / "static" / "offline" / asset).stat().st_size > 1000, asset


def test_localise_html_rewrites_cdn_tags_and_reports_unknown_ones():
    html = ('<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>'
            '<script src="https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js" '
            'integrity="sha384-x" crossorigin="anonymous"></script>'
            '<script src="https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js"></script>'
            '<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>'
            '<script src="https://cdn.jsdelivr.net/npm/vega@5"></script>'
            '<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=1&dataContextId=x">'
            '<script src="https://example.org/new.js"></script><a href="https://greatexpectations.io">GX</a>')
    out, unknown = localise_html(html, "../static")
    assert out == ('<script src="../static/offline/jquery/jquery.min.js"></script>'
                   '<script src="../static/offline/bootstrap/js/bootstrap.bundle.min.js"></script>'
                   '<link rel="stylesheet" href="../static/offline/bootstrap/css/bootstrap.min.css">'
                   '<img src="../static/images/logo-long.png">'
                   '<script src="https://example.org/new.js"></script><a href="https://greatexpectations.io">GX</a>')
    assert unknown == {"https://example.org/new.js"}


# ------------------------------------------------------------------------------------------ in a browser


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")
    # no network: every request goes to a proxy nobody listens on, except loopback (Chromium never sends loopback
    # through a proxy)
    with chromium(("--disable-background-networking", "--disable-component-update", "--disable-sync",
                   f"--user-data-dir={profile}", "--proxy-server=127.0.0.1:9"),
                  {"goog:loggingPrefs": {"performance": "ALL"}}) as driver:
        yield driver


def network_log(driver) -> tuple[dict[str, str], set[str]]:
    """Requests since the last call: id -> URL, and the ids the page's Content-Security-Policy blocked (those
    never leave the browser)."""
    requests, blocked = {}, set()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message["method"] == "Network.requestWillBeSent":
            requests[params["requestId"]] = params["request"]["url"]
        elif message["method"] == "Network.loadingFailed" and params.get("blockedReason") == "csp":
            blocked.add(params["requestId"])
    return requests, blocked


def visit(driver, url: str, shown, name: str) -> str:
    """Load ``url``, wait until ``shown(body_text)`` holds, screenshot it; fail on any request that left the
    browser for anything but the page's own loopback server or local files."""
    network_log(driver)  # drop earlier pages' entries
    driver.get(url)
    body = lambda d: d.find_element(By.TAG_NAME, "body").text  # noqa: E731
    try:
        WebDriverWait(driver, 60, poll_frequency=0.5).until(lambda d: shown(body(d)))
    finally:
        driver.save_screenshot(str(artifacts_dir() / f"offline_{name}.png"))
    origin = urlparse(url)
    requests, blocked = network_log(driver)
    outside = [u for i, u in requests.items() if i not in blocked
               and urlparse(u).scheme not in LOCAL_SCHEMES and urlparse(u).netloc != origin.netloc]
    assert not outside, f"{name} requested {outside}"
    assert len(requests) > 1, "the page's own scripts and styles were requested"
    return body(driver)


@contextlib.contextmanager
def serve_app(published: Path):
    import uvicorn

    from serving.api import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(published), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def serve_folder(folder: Path):
    handler = partial(SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@needs_browser
def test_api_docs_and_redoc_render_offline(pipeline_warehouse, browser):
    with serve_app(pipeline_warehouse.published) as (url, server):
        summaries = [op["summary"] for path in server.config.app.openapi()["paths"].values() for op in path.values()]
        assert "Daily forecast of one store" in summaries

        swagger = visit(browser, f"{url}/docs", lambda text: "Daily forecast of one store" in text, "swagger")
        paths = {el.get_attribute("data-path") for el in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
        assert "/stores/{store_id}/forecast" in paths and "/predict" in paths, paths
        assert "Rossmann forecast API" in swagger

        redoc = visit(browser, f"{url}/redoc", lambda text: "Live predictions with their interval" in text, "redoc")
        assert "Rossmann forecast API" in redoc
        assert all(summary in redoc for summary in summaries), "ReDoc lists every operation"


@needs_browser
def test_great_expectations_data_docs_render_offline(pipeline_warehouse, browser):
    index = data_docs(pipeline_warehouse) / "index.html"
    # the validation runs' table is drawn by bootstrap-table from inline data: empty unless its scripts load
    text = visit(browser, index.as_uri(), lambda text: "Showing 1 to" in text, "data_docs_index")
    rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "table.ge-index-page-validation-results-table tbody tr")]
    for suite in SUITES:
        assert any(suite in row for row in rows), (suite, rows)
    assert "Validation Results" in text

    suite = next(iter(SUITES))
    run = next((data_docs(pipeline_warehouse) / "validations").glob(f"**/{suite}/**/*.html"))
    page = visit(browser, run.as_uri(), lambda text: "Successful Expectations" in text, "data_docs_validation")
    assert f"Expectation Suite: {suite}" in page and "Must have exactly these columns" in page


@needs_browser
def test_dbt_docs_render_offline(pipeline_warehouse, browser, tmp_path):
    from warehouse.dbt import dbt_args, dbt_resource

    build = pipeline_warehouse.copy_build(tmp_path / "build.duckdb")
    target = tmp_path / "dbt_docs"
    with contextlib.redirect_stdout(io.StringIO()):  # dagster-dbt echoes every dbt event
        invocation = dbt_resource().cli(dbt_args(["docs", "generate"], build), target_path=target,
                                        raise_on_error=False)
        invocation.wait()
    assert invocation.is_successful(), "dbt docs generate failed"
    assert (target / "index.html").exists() and (target / "catalog.json").exists()

    with serve_folder(target) as url:
        # a model's page: the project tree, the model's columns with the types dbt read from the warehouse
        # (catalog.json) -- the site's scripts are inline in index.html, its data fetched from the same server
        page = visit(browser, f"{url}/index.html#!/model/model.rossmann.fct_sales_forecast",
                     lambda text: "sales_pred" in text and "DOUBLE" in text.upper(), "dbt_docs")
        assert "fct_sales_forecast" in page and "dim_stores" in page
