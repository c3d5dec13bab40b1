"""The deployment (deploy/): the compose file's services and volumes; and, with podman, the image built from a base
made locally with debootstrap, the pipeline run inside it on the default data, the API answering from outside.

The podman test takes minutes (the image's dependency layer, then a fast-profile run on the 60-store default
data); podman's layer cache keeps the base image and the dependency layer between runs. It skips where podman
cannot run a container, or where no base image exists and debootstrap is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from browser import free_port

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
BASE_IMAGE = "localhost/debian-python311:bookworm"
IMAGE = "localhost/rossmann-platform:test"
PLATFORM_UID = "10001"
LONG_RUNNING = {"dagster-webserver", "dagster-daemon", "api", "dashboard"}
# Where pip in the build finds the CA bundle of a TLS-intercepting proxy (the host's own trust, as pip uses it here).
CA_BUNDLE = next((Path(p) for p in (os.environ.get("PIP_CERT"), os.environ.get("REQUESTS_CA_BUNDLE"),
                                    "/etc/ssl/certs/ca-certificates.crt") if p and Path(p).is_file()), None)


def test_compose_runs_every_service_of_one_image_on_shared_volumes():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == LONG_RUNNING | {"pipeline"}
    for name, service in services.items():
        assert service["command"] == [name], name
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Containerfile",
                                    "args": {"BASE": "${BASE_IMAGE:-docker.io/library/python:3.11-slim}"}}
        assert service["volumes"] == ["data:/data", "${INPUT_DIR:-input}:/input:ro"], name
        assert "API_KEYS_FILE" in service["environment"], name  # passed on from the host when set
        assert service["restart"] == ("no" if name == "pipeline" else "unless-stopped"), name
    assert {name: services[name].get("ports") for name in services} == {
        "dagster-webserver": ["${DAGSTER_PORT:-3000}:3000"], "dagster-daemon": None, "pipeline": None,
        "api": ["${API_PORT:-8000}:8000"], "dashboard": ["${DASHBOARD_PORT:-8501}:8501"]}
    assert set(compose["volumes"]) == {"data", "input"}
    # every subcommand the compose file uses is one the entrypoint knows
    entrypoint = (DEPLOY / "entrypoint.sh").read_text()
    assert all(f"\n  {name})\n" in entrypoint for name in services)


def _progress(config: pytest.Config, message: str) -> None:
    """A progress line on the terminal as the steps go (pytest captures the test's own output)."""
    with config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        print(f"\n[container {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _podman(*args: str, timeout: float = 120, log: Path | None = None) -> subprocess.CompletedProcess:
    """podman with ``args``; with ``log``, its output goes there (a build's thousands of lines) and is read back."""
    if log is None:
        return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    with open(log, "w") as out:
        result = subprocess.run(["podman", *args], stdout=out, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    return subprocess.CompletedProcess(result.args, result.returncode, log.read_text(), "")


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="module")
def podman_ready(pytestconfig):
    """podman configured by deploy/podman-setup.sh, the debootstrap base image, and a container that runs."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (apt-get install podman runc)")
    setup = subprocess.run([str(DEPLOY / "podman-setup.sh")], capture_output=True, text=True, timeout=60)
    if setup.returncode != 0:
        pytest.skip(f"podman cannot be configured here: {setup.stderr.strip()}")
    if _podman("image", "exists", BASE_IMAGE).returncode != 0:
        if shutil.which("debootstrap") is None:
            pytest.skip(f"no base image {BASE_IMAGE} and debootstrap is not installed to make one")
        _progress(pytestconfig, f"making the base image {BASE_IMAGE} with debootstrap (a minute or two)")
        base = subprocess.run([str(DEPLOY / "base-image.sh"), BASE_IMAGE], capture_output=True, text=True,
                              timeout=900)
        assert base.returncode == 0, f"deploy/base-image.sh failed:\n{_tail(base.stdout + base.stderr)}"
    probe = _podman("run", "--rm", "--network", "host", BASE_IMAGE, "true")
    if probe.returncode != 0:
        pytest.skip(f"podman cannot run a container here: {probe.stderr.strip()[-500:]}")


def _get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_image_runs_the_pipeline_and_serves_forecasts(podman_ready, tmp_path, pytestconfig):
    started = time.perf_counter()
    build_args = ["build", "--network", "host", "--format", "docker", "--build-arg", f"BASE={BASE_IMAGE}",
                  "-t", IMAGE, "-f", str(DEPLOY / "Containerfile")]
    if CA_BUNDLE is not None:
        build_args += ["--secret", f"id=ca_bundle,src={CA_BUNDLE}"]
    _progress(pytestconfig, f"building {IMAGE} (minutes from nothing; log: {tmp_path / 'build.log'})")
    build = _podman(*build_args, str(REPO), timeout=1200, log=tmp_path / "build.log")
    assert build.returncode == 0, f"podman build failed:\n{_tail(build.stdout)}"
    inspect = json.loads(_podman("image", "inspect", IMAGE).stdout)[0]
    size_mb = inspect["Size"] / 1e6
    _progress(pytestconfig, f"built in {time.perf_counter() - started:.0f}s, {size_mb:.0f} MB")
    config = inspect["Config"]
    assert config["User"] == f"{PLATFORM_UID}:{PLATFORM_UID}"
    assert inspect["Healthcheck"]["Test"] == ["CMD", "/app/deploy/entrypoint.sh", "healthcheck"]

    volume = f"rossmann-test-{uuid.uuid4().hex[:8]}"  # named: the image gives /data to the platform user
    api = f"rossmann-test-api-{uuid.uuid4().hex[:8]}"
    port = free_port()
    try:
        assert _podman("volume", "create", volume).returncode == 0
        _progress(pytestconfig, "pipeline on the default data (TRAINING_PROFILE=fast)")
        run = _podman("run", "--rm", "--network", "host", "-e", "TRAINING_PROFILE=fast", "-v", f"{volume}:/data",
                      IMAGE, "pipeline", timeout=900, log=tmp_path / "pipeline.log")
        assert run.returncode == 0, f"pipeline failed in the container:\n{_tail(run.stdout, 60)}"
        assert "succeeded" in run.stdout and "input: default data" in run.stdout
        _progress(pytestconfig, f"pipeline done ({time.perf_counter() - started:.0f}s so far); starting the API")

        assert _podman("run", "-d", "--name", api, "--network", "host", "-e", f"PORT={port}",
                       "-e", "API_HOST=127.0.0.1", "-v", f"{volume}:/data", IMAGE, "api").returncode == 0
        deadline = time.monotonic() + 180
        status, health = None, {}
        while time.monotonic() < deadline:
            try:
                status, health = _get_json(f"http://127.0.0.1:{port}/health")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(1)
        assert status == 200, f"/health answered {status} {health}\n{_tail(_podman('logs', api).stderr)}"
        assert health["published_version"] and health["source_run"]

        status, forecast = _get_json(f"http://127.0.0.1:{port}/stores/1/forecast")
        assert status == 200, forecast
        assert forecast["store_id"] == 1 and forecast["is_champion"]
        assert len(forecast["rows"]) == 42 and forecast["published_version"] == health["published_version"]

        # the image's health check (run on demand: no systemd timer here) and its non-root user
        assert _podman("healthcheck", "run", api).returncode == 0
        assert _podman("exec", api, "id", "-u").stdout.strip() == PLATFORM_UID
        _progress(pytestconfig, f"API answered; {time.perf_counter() - started:.0f}s in all, image {size_mb:.0f} MB")
    finally:
        _podman("rm", "--force", api)
        _podman("volume", "rm", "--force", volume)
