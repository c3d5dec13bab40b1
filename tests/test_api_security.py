"""API access control (issue 13 item 2): keys with scopes from API_KEYS_FILE, managed by a command while the API
runs; the launcher's loopback-only rule without keys; TLS with a self-signed pair made here; CORS."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import ssl
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.api import create_app
from serving.api.keys import add_key, read_keys, revoke_key
from serving.api.serve import UnsafeStart, check_start, is_loopback
from settings import Settings

REPO = Path(__file__).resolve().parents[1]


def cli(*args, keys_file: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "serving.api.keys", *args], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "API_KEYS_FILE": str(keys_file), "PYTHONPATH": str(REPO)},
                          timeout=60)


def keyed_client(published, keys_file: Path, **overrides) -> TestClient:
    settings = replace(Settings.from_env({"DATA_DIR": str(keys_file.parent)}), api_keys_file=keys_file, **overrides)
    return TestClient(create_app(published, settings=settings), raise_server_exceptions=False)


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_keys_command_adds_lists_and_revokes_keys_stored_hashed(tmp_path):
    keys_file = tmp_path / "keys.json"
    added = cli("add", "--name", "dashboard", "--scope", "read,predict", keys_file=keys_file)
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip().splitlines()[-1]
    assert key.startswith("rsk_"), "the key is the last line"
    text = keys_file.read_text()
    assert key not in text and key.split("_", 2)[2] not in text, "only a hash of the key is kept"  # the secret may hold "_"
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    (record,) = json.loads(text)["keys"]
    assert record["name"] == "dashboard" and record["scopes"] == ["read", "predict"] and len(record["sha256"]) == 64
    assert dt.datetime.fromisoformat(record["created_at"]).tzinfo is not None

    listed = cli("list", keys_file=keys_file)
    assert listed.returncode == 0 and record["id"] in listed.stdout and key not in listed.stdout
    assert cli("revoke", record["id"], keys_file=keys_file).returncode == 0
    assert read_keys(keys_file) == {}
    unknown = cli("revoke", "nosuchkey", keys_file=keys_file)
    assert unknown.returncode == 2 and "nosuchkey" in unknown.stderr
    bad = cli("add", "--name", "x", "--scope", "write", keys_file=keys_file)
    assert bad.returncode == 2 and "write" in bad.stderr and "read" in bad.stderr


def test_no_key_is_401_a_key_without_the_scope_is_403(pipeline_warehouse, tmp_path):
    keys_file = tmp_path / "keys.json"
    _, reader_key = add_key(keys_file, "reader", "read")
    _, predictor_key = add_key(keys_file, "predictor", "predict")
    _, admin_key = add_key(keys_file, "ops", "admin")
    row = {"store": 1, "date": "2015-08-03"}
    with keyed_client(pipeline_warehouse.published, keys_file) as c:
        for url in ("/stores", "/stores/1/forecast", "/models", "/metrics"):
            r = c.get(url)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", (url, r.text)
            assert c.get(url, headers=bearer(reader_key + "x")).status_code == 401
            assert c.get(url, headers={"Authorization": f"Basic {reader_key}"}).status_code == 401
            assert c.get(url, headers=bearer(reader_key)).status_code == 200, url
            assert c.get(url, headers=bearer(admin_key)).status_code == 200, url
            r = c.get(url, headers=bearer(predictor_key))
            assert r.status_code == 403 and "'read' scope" in r.json()["detail"], r.text
        assert c.post("/predict", json=row).status_code == 401
        r = c.post("/predict", json=row, headers=bearer(reader_key))
        assert r.status_code == 403 and "'predict' scope" in r.json()["detail"]
        assert reader_key not in r.text, "a refusal never echoes the key"
        assert c.post("/predict", json=row, headers=bearer(predictor_key)).status_code == 200
        assert c.post("/predict", json=row, headers=bearer(admin_key)).status_code == 200
        health = c.get("/health")  # the load balancer's probe needs no key and shows no path
        assert health.status_code == 200 and str(pipeline_warehouse.published.parent) not in health.text


def test_keys_are_added_and_revoked_without_a_restart(pipeline_warehouse, tmp_path):
    keys_file = tmp_path / "keys.json"
    record, key = add_key(keys_file, "first", "read")
    with keyed_client(pipeline_warehouse.published, keys_file) as c:
        assert c.get("/stores/1", headers=bearer(key)).status_code == 200
        added = cli("add", "--name", "second", "--scope", "read", keys_file=keys_file)
        second = added.stdout.strip().splitlines()[-1]
        assert c.get("/stores/1", headers=bearer(second)).status_code == 200
        revoke_key(keys_file, record.id)
        assert c.get("/stores/1", headers=bearer(key)).status_code == 401
        assert c.get("/stores/1", headers=bearer(second)).status_code == 200


def test_a_broken_keys_file_fails_closed(pipeline_warehouse, tmp_path):
    keys_file = tmp_path / "keys.json"
    _, key = add_key(keys_file, "reader", "read")
    with keyed_client(pipeline_warehouse.published, keys_file) as c:
        keys_file.write_text("{not json")
        r = c.get("/stores", headers=bearer(key))
        assert r.status_code == 503 and str(keys_file) not in r.text


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.5"])
def test_loopback_hosts(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "10.1.2.3", "example.invalid"])
def test_other_hosts_are_not_loopback(host):
    assert not is_loopback(host)


def test_the_launcher_refuses_other_interfaces_without_keys(tmp_path):
    open_settings = Settings.from_env({"DATA_DIR": str(tmp_path), "HOST": "0.0.0.0"})
    with pytest.raises(UnsafeStart, match="API_KEYS_FILE"):
        check_start(open_settings)
    assert "OPEN" in check_start(replace(open_settings, api_host="127.0.0.1"))
    with pytest.raises(UnsafeStart, match="does not exist"):
        check_start(replace(open_settings, api_keys_file=tmp_path / "missing.json"))
    add_key(tmp_path / "keys.json", "reader", "read")
    assert "API keys from" in check_start(replace(open_settings, api_keys_file=tmp_path / "keys.json"))
    with pytest.raises(UnsafeStart, match="both"):
        check_start(replace(open_settings, api_host="127.0.0.1", api_tls_certfile=tmp_path / "c.pem"))
    # the real command: exits with the reason, never listens
    run = subprocess.run([sys.executable, "-m", "serving.api.serve", "--host", "0.0.0.0", "--port", "1"],
                         capture_output=True, text=True, cwd=REPO, timeout=120,
                         env={**os.environ, "DATA_DIR": str(tmp_path), "PYTHONPATH": str(REPO),
                              "API_KEYS_FILE": ""})
    assert run.returncode == 2 and "Refusing to listen on '0.0.0.0' without API keys" in run.stderr


def self_signed_pair(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 / localhost and its key, made with the cryptography package."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tls_with_a_self_signed_pair(pipeline_warehouse, tmp_path):
    pytest.importorskip("cryptography")
    cert_file, key_file = self_signed_pair(tmp_path)
    keys_file = tmp_path / "keys.json"
    _, key = add_key(keys_file, "reader", "read")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "DATA_DIR": str(tmp_path), "HOST": "127.0.0.1", "PORT": str(port),
           "PUBLISHED_WAREHOUSE": str(pipeline_warehouse.published), "API_KEYS_FILE": str(keys_file),
           "API_TLS_CERTFILE": str(cert_file), "API_TLS_KEYFILE": str(key_file)}
    server = subprocess.Popen([sys.executable, "-m", "serving.api.serve"], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    trusted = ssl.create_default_context(cafile=str(cert_file))
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{port}/health", context=trusted, timeout=5) as r:
                    assert r.status == 200 and json.load(r)["status"] == "ok"
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, server.stdout.read()
                assert time.monotonic() < deadline, "the HTTPS server did not answer"
                time.sleep(0.5)
        request = urllib.request.Request(f"https://127.0.0.1:{port}/stores/1", headers=bearer(key))
        with urllib.request.urlopen(request, context=trusted, timeout=10) as r:
            assert json.load(r)["store_id"] == 1
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            urllib.request.urlopen(f"https://127.0.0.1:{port}/health", context=ssl.create_default_context(),
                                   timeout=10)
        with pytest.raises((urllib.error.URLError, ConnectionError, http_errors())):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10)  # plain HTTP is not served
    finally:
        server.terminate()
        server.wait(timeout=30)


def http_errors():
    import http.client
    return http.client.HTTPException


def test_cors_origins_are_none_by_default_and_configurable(pipeline_warehouse, tmp_path):
    preflight = {"Origin": "https://bi.example.com", "Access-Control-Request-Method": "GET"}
    settings = Settings.from_env({"DATA_DIR": str(tmp_path)})
    with TestClient(create_app(pipeline_warehouse.published, settings=settings)) as c:
        r = c.get("/stores/1", headers={"Origin": "https://bi.example.com"})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    settings = Settings.from_env({"DATA_DIR": str(tmp_path), "API_CORS_ORIGINS": "https://bi.example.com, https://x.org"})
    with TestClient(create_app(pipeline_warehouse.published, settings=settings)) as c:
        r = c.get("/stores/1", headers={"Origin": "https://bi.example.com"})
        assert r.headers["access-control-allow-origin"] == "https://bi.example.com"
        r = c.options("/stores/1", headers=preflight)
        assert r.status_code == 200 and "Authorization" in r.headers["access-control-allow-headers"]
        r = c.get("/stores/1", headers={"Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in r.headers


# ------------------------------------------------------------------------------------------ data at rest


def test_pipeline_artifacts_record_checksums_and_are_not_world_readable(pipeline_warehouse):
    from forecasting.artifacts import META_FILE, file_checksums

    folders = [p for p in (pipeline_warehouse.data_dir / "models").glob("*/*") if (p / META_FILE).is_file()]
    assert folders
    for folder in folders:
        meta = json.loads((folder / META_FILE).read_text())
        assert meta["checksums"] == file_checksums(folder) and meta["checksums"], folder
        assert stat.S_IMODE(folder.stat().st_mode) == 0o750
        assert all(stat.S_IMODE(f.stat().st_mode) == 0o640 for f in folder.rglob("*") if f.is_file())
    assert stat.S_IMODE(pipeline_warehouse.published.stat().st_mode) == 0o440


def private_models(pipeline_warehouse, data_dir: Path) -> Path:
    """A private DATA_DIR/models with the pipeline's random forest versions (tests must not change the fixture's)."""
    import shutil

    target = data_dir / "models" / "random_forest"
    shutil.copytree(pipeline_warehouse.data_dir / "models" / "random_forest", target)
    return target


def test_artifacts_load_only_from_the_models_folder_and_only_unchanged(pipeline_warehouse, tmp_path):
    import shutil

    data_dir = tmp_path / "data"
    models = private_models(pipeline_warehouse, data_dir)
    (data_dir / "published").mkdir()
    shutil.copyfile(pipeline_warehouse.published, data_dir / "published" / "warehouse.duckdb")
    settings = Settings.from_env({"DATA_DIR": str(data_dir)})
    row = {"store": 1, "date": "2015-08-03"}
    # the registry's absolute path names the pipeline's own DATA_DIR: outside this server's, so never loaded from
    with TestClient(create_app(data_dir / "published", settings=settings),
                    raise_server_exceptions=False) as c:
        r = c.post("/predict", params={"model": "random_forest"}, json=row)
        assert r.status_code == 200, r.text
        version = r.json()["model_version"]
        model_file = next(f for f in (models / version).iterdir() if f.name.endswith(".joblib"))
        with model_file.open("ab") as f:
            f.write(b"tampered")
        r = c.post("/predict", params={"model": "random_forest"}, json=row)
        assert r.status_code == 503 and "integrity" in r.json()["detail"], r.text
        assert str(tmp_path) not in r.text
        # a link out of the models folder is resolved and refused
        shutil.rmtree(models / version)
        (models / version).symlink_to(pipeline_warehouse.data_dir / "models" / "random_forest" / version)
        r = c.post("/predict", params={"model": "random_forest"}, json=row)
        assert r.status_code == 503 and "models folder" in r.json()["detail"], r.text


def test_verify_artifact_refuses_missing_checksums_and_outside_folders(pipeline_warehouse, tmp_path):
    from forecasting.artifacts import META_FILE, ArtifactIntegrityError, verify_artifact

    models = private_models(pipeline_warehouse, tmp_path / "data")
    folder = next(p for p in models.iterdir() if p.is_dir())
    assert verify_artifact(folder, [tmp_path / "data" / "models"])["model"] == "random_forest"
    with pytest.raises(ArtifactIntegrityError, match="outside the models folder"):
        verify_artifact(folder, [tmp_path / "elsewhere"])
    meta = json.loads((folder / META_FILE).read_text())
    (folder / META_FILE).write_text(json.dumps({k: v for k, v in meta.items() if k != "checksums"}))
    with pytest.raises(ArtifactIntegrityError, match="no checksums"):
        verify_artifact(folder, [tmp_path / "data" / "models"])


def test_restrict_permissions_with_a_reader_group(tmp_path):
    import grp
    from settings import restrict_permissions

    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f.txt").write_text("x")
    group = grp.getgrgid(os.getgid()).gr_name  # a group this user may set
    restrict_permissions(tmp_path / "a", group)
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "a" / "b" / "f.txt").stat().st_mode) == 0o640
    assert (tmp_path / "a" / "b" / "f.txt").stat().st_gid == os.getgid()
    assert Settings.from_env({"PLATFORM_READER_GROUP": "analysts"}).platform_reader_group == "analysts"
