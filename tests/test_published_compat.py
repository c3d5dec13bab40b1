"""The published copy opens in the DuckDB 1.x clients that BI tools bundle (Metabase's driver, duckdb-engine for
Superset, DBeaver's JDBC driver).

Older duckdb wheels are installed from the package index into a throwaway folder (once per session, under pytest's
tmp) and read every published table from a separate process with that folder first on ``sys.path``; the row
counts must equal the build warehouse's. Skips when pip cannot fetch the wheels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from serving.reader import open_published
from settings import PUBLISH_STORAGE_VERSION, Settings
from warehouse.publish import DEFAULT_SCHEMAS, publish_warehouse

# The oldest release line the default storage version promises, the line most BI drivers bundle today, and the
# last 1.x line.
OLD_DUCKDB = ("1.1.3", "1.4.4", "1.5.6")

# Runs under the old duckdb: every table of the copy, read-only as a BI connection opens it, every row fetched
# (so every column's storage is decoded), counted.
READ_EVERY_TABLE = """
import json, sys
import duckdb
assert duckdb.__version__ == sys.argv[2], (duckdb.__file__, duckdb.__version__)
con = duckdb.connect(sys.argv[1], read_only=True)
tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables() "
                     "WHERE database_name = current_database() ORDER BY 1, 2").fetchall()
print(json.dumps({f"{s}.{t}": len(con.execute(f'SELECT * FROM "{s}"."{t}"').fetchall()) for s, t in tables}))
"""


@pytest.fixture(scope="session")
def old_duckdb(tmp_path_factory):
    """``old_duckdb(version)``: a folder holding that duckdb release (installed once per session)."""
    root = tmp_path_factory.mktemp("old-duckdb")
    installed: dict[str, Path | str] = {}  # version -> folder, or why pip could not install it

    def install(version: str) -> Path:
        if version not in installed:
            target = root / version
            try:
                proc = subprocess.run(
                    [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                     "--only-binary=:all:", "--target", str(target), f"duckdb=={version}"],
                    capture_output=True, text=True, timeout=600)
            except subprocess.TimeoutExpired:
                installed[version] = f"pip did not install duckdb=={version} within 10 minutes"
            else:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
                installed[version] = (target if proc.returncode == 0
                                      else f"pip could not install duckdb=={version}: {tail[0]}")
        if isinstance(installed[version], str):
            pytest.skip(installed[version])
        return installed[version]

    return install


def read_with(folder, version: str, path) -> dict[str, int]:
    proc = subprocess.run([sys.executable, "-c", READ_EVERY_TABLE, str(path), version],
                          env={**os.environ, "PYTHONPATH": str(folder)},
                          capture_output=True, text=True, timeout=300)
    if proc.returncode:
        raise AssertionError(f"duckdb {version} could not read {path}:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def published_copies(pipeline_warehouse, tmp_path_factory):
    """The build warehouse (a private copy) published with the default storage version and with DuckDB's own
    format, and the build's row count of every object the copy holds."""
    root = tmp_path_factory.mktemp("compat")
    build = pipeline_warehouse.copy_build(root / "build.duckdb")
    compatible = publish_warehouse(build, root / "compatible", source_run="compat").path
    native = publish_warehouse(build, root / "native", source_run="native", storage_version="").path
    with duckdb.connect(str(build), read_only=True) as con:
        objects = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE list_contains($s, schema_name) UNION ALL "
            "SELECT schema_name, view_name FROM duckdb_views() WHERE list_contains($s, schema_name) AND NOT internal",
            {"s": list(DEFAULT_SCHEMAS)}).fetchall()
        expected = {f"{s}.{t}": con.execute(f'SELECT count(*) FROM "{s}"."{t}"').fetchall()[0][0] for s, t in objects}
    return compatible, native, expected


@pytest.mark.parametrize("version", OLD_DUCKDB)
def test_old_duckdb_clients_read_every_published_table(published_copies, old_duckdb, version):
    compatible, _native, expected = published_copies
    counts = read_with(old_duckdb(version), version, compatible)

    published = {name: n for name, n in counts.items() if not name.startswith("meta.")}
    assert published == expected, "every marts/ml table and view, with the build warehouse's row count"
    assert expected["ml.store_sales_forecast"] > 0 and expected["marts.fct_sales_forecast"] > 0
    assert counts["meta.publication"] == 1 and counts["meta.published_tables"] == len(expected)


def test_duckdb_2_format_is_what_old_clients_refuse(published_copies, old_duckdb):
    """Why the copy is written in an older storage version: a 1.x client refuses DuckDB 2.0's own format."""
    _compatible, native, _expected = published_copies
    with pytest.raises(AssertionError, match="newer version"):
        read_with(old_duckdb(OLD_DUCKDB[0]), OLD_DUCKDB[0], native)


def storage_version(path) -> str:
    with open_published(path) as con:
        return con.execute("SELECT tags['storage_version'] FROM duckdb_databases() "
                           "WHERE database_name = current_database()").fetchall()[0][0]


def test_the_pipeline_publishes_the_configured_storage_version(pipeline_warehouse, published_copies):
    """The publish asset passes the setting (default v1.0.0); the API's reader opens that copy."""
    assert PUBLISH_STORAGE_VERSION == "v1.0.0" == Settings.from_env({}).publish_storage_version
    assert storage_version(pipeline_warehouse.published) == "v1.0.0+"
    assert storage_version(published_copies[1]) != "v1.0.0+"
    with open_published(pipeline_warehouse.published) as con:
        assert con.execute("SELECT count(*) FROM marts.dim_stores").fetchall()[0][0] == pipeline_warehouse.n_stores


def test_python_m_warehouse_publish_takes_the_storage_version_from_the_environment(pipeline_warehouse, tmp_path):
    build = pipeline_warehouse.copy_build(tmp_path / "build.duckdb")
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PUBLISH_STORAGE_VERSION": "v1.2.0",
           "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-m", "warehouse.publish", "--build", str(build),
                    "--published-dir", str(tmp_path / "published")], env=env, cwd=repo, check=True,
                   capture_output=True, timeout=300)
    assert storage_version(tmp_path / "published") == "v1.2.0+"
    assert Settings.from_env({"PUBLISH_STORAGE_VERSION": " v1.2.0 "}).publish_storage_version == "v1.2.0"
