"""Headless Debian chromium for the browser tests (system chromedriver, no driver download), a free loopback
port and the folder screenshots go to ($TEST_ARTIFACTS_DIR, default $DATA_DIR/test-artifacts/)."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

try:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover  (the tests skip through needs_browser)
    webdriver = By = WebDriverWait = None

__all__ = ["By", "WebDriverWait", "artifacts_dir", "chromium", "free_port", "needs_browser"]

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

needs_browser = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER and webdriver),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver) and selenium")

BASE_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--disable-extensions", "--window-size=1400,1100")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def artifacts_dir() -> Path:
    default = Path(os.environ.get("DATA_DIR", REPO / "data")) / "test-artifacts"
    path = Path(os.environ.get("TEST_ARTIFACTS_DIR", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def chromium(extra_args: Iterable[str] = (), capabilities: dict | None = None) -> Iterator:
    """A chromium webdriver with BASE_ARGS plus ``extra_args``; quit on exit."""
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (*BASE_ARGS, *extra_args):
        options.add_argument(arg)
    for name, value in (capabilities or {}).items():
        options.set_capability(name, value)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
