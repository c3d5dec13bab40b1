"""Publishing the build warehouse as an atomically replaced read-only copy, and reading it meanwhile.

Every test publishes a private copy of the build warehouse the pipeline built (tests/conftest.py)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

import warehouse.publish as publish_module
from serving.reader import PublishedWarehouseMissing, open_published, published_path, read_publication
from warehouse.publish import publish_warehouse

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def build(pipeline_warehouse, tmp_path) -> Path:
    """A copy of the pipeline's build warehouse (raw, staging and intermediate are not published by default;
    ml.champion_forecast is dbt's view) plus a view of our own in marts."""
    path = pipeline_warehouse.copy_build(tmp_path / "build.duckdb")
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE VIEW marts.v_open_days AS "
                    "SELECT store_id, count(*) AS n FROM marts.fct_store_daily_features WHERE is_open GROUP BY 1")
    return path


def file_state(path: Path) -> tuple:
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns, path.read_bytes()


def temp_files(published_dir: Path) -> list[Path]:
    return [p for p in published_dir.iterdir() if p.name != ".publish.lock" and p.name != "warehouse.duckdb"]


def test_publishes_marts_and_ml_as_a_recorded_read_only_copy(build, tmp_path):
    published_dir = tmp_path / "published"
    version = publish_warehouse(build, published_dir, source_run="run-1")

    target = published_dir / "warehouse.duckdb"
    assert version.path == target and target.exists()
    assert not temp_files(published_dir), "no temporary file or WAL is left behind"
    assert stat.S_IMODE(target.stat().st_mode) == 0o440  # owner and reader group only
    with duckdb.connect(str(build), read_only=True) as src:
        objects = src.execute("SELECT schema_name, table_name FROM duckdb_tables() "
                              "WHERE schema_name IN ('marts', 'ml') UNION ALL "
                              "SELECT schema_name, view_name FROM duckdb_views() "
                              "WHERE schema_name IN ('marts', 'ml') AND NOT internal").fetchall()
        expected = {f"{s}.{t}": src.execute(f"SELECT count(*) FROM {s}.{t}").fetchall()[0][0] for s, t in objects}
        assert "marts.v_open_days" in expected and "ml.champion_forecast" in expected
        forecast_hash = src.execute("SELECT sum(hash(f)::HUGEINT) FROM ml.store_sales_forecast f").fetchall()[0][0]
    assert version.tables == expected

    with open_published(published_dir) as con:
        schemas = {r[0] for r in con.execute(
            "SELECT DISTINCT schema_name FROM duckdb_tables() WHERE database_name = current_database()").fetchall()}
        assert schemas == {"marts", "ml", "meta"}, "raw and staging are not published by default"
        assert con.execute("SELECT count(*) FROM duckdb_views() WHERE database_name = current_database() "
                           "AND NOT internal").fetchall() == [(0,)], "views are materialised as tables"
        pub = con.execute("SELECT version_id, source_run, source_path, previous_version_id, n_tables, n_rows "
                          "FROM meta.publication").fetchall()
        assert pub == [(version.version_id, "run-1", str(build.resolve()), None, len(expected),
                        sum(expected.values()))]
        assert con.execute("SELECT sum(hash(f)::HUGEINT) FROM ml.store_sales_forecast f").fetchall()[0][0] == \
            forecast_hash
        # single-store lookups stay cheap: copies are sorted by store (then model/version/date)
        ids = [r[0] for r in con.execute("SELECT store_id FROM ml.store_sales_forecast").fetchall()]
        assert ids == sorted(ids)
    assert read_publication(published_dir) == version


def test_history_and_version_chain(build, tmp_path):
    first = publish_warehouse(build, tmp_path / "pub", source_run="run-1")
    second = publish_warehouse(build, tmp_path / "pub", source_run="run-2")
    assert second.version_id > first.version_id and second.previous_version_id == first.version_id
    with open_published(tmp_path / "pub") as con:
        history = con.execute("SELECT version_id, source_run FROM meta.publication_history "
                              "ORDER BY published_at").fetchall()
    assert history == [(first.version_id, "run-1"), (second.version_id, "run-2")]


def test_other_schemas_on_request_with_views_materialised(build, tmp_path):
    with duckdb.connect(str(build), read_only=True) as src:
        n_sales, store_sum = src.execute("SELECT count(*), sum(Store) FROM raw.sales").fetchall()[0]
    version = publish_warehouse(build, tmp_path / "pub", source_run="r", schemas=("staging", "raw", "ml"))
    assert version.tables["staging.stg_rossmann__sales"] == version.tables["raw.sales"] == n_sales
    with open_published(tmp_path / "pub") as con:
        kinds = dict(con.execute("SELECT table_schema || '.' || table_name, source_kind "
                                 "FROM meta.published_tables").fetchall())
        assert kinds["staging.stg_rossmann__sales"] == "view" and kinds["raw.sales"] == "table"
        assert con.execute("SELECT sum(store_id) FROM staging.stg_rossmann__sales").fetchall() == [(store_sum,)]


def test_the_build_warehouse_may_be_passed_as_the_callers_connection(build, tmp_path):
    with duckdb.connect(str(build)) as con:  # e.g. the pipeline's own (read-write) connection
        version = publish_warehouse(con, tmp_path / "pub", source_run="r")
        con.execute("CREATE TABLE marts.after_publish AS SELECT 1 AS x")  # the connection is still usable
    assert "marts.fct_store_daily_features" in version.tables
    assert read_publication(tmp_path / "pub").version_id == version.version_id


@pytest.mark.parametrize("failure", ["bad_schema", "copy", "meta", "rename"])
def test_a_failed_publish_leaves_the_previous_copy(build, tmp_path, monkeypatch, failure):
    published_dir = tmp_path / "published"
    good = publish_warehouse(build, published_dir, source_run="good")
    before = file_state(published_dir / "warehouse.duckdb")

    def boom(*args, **kwargs):
        raise RuntimeError(f"injected failure: {failure}")

    kwargs = {}
    if failure == "bad_schema":
        kwargs["schemas"] = ("marts", "no_such_schema")
    elif failure == "copy":
        original = publish_module._order_by
        calls = []

        def fail_on_third_table(*args):
            calls.append(args)
            if len(calls) == 3:
                raise RuntimeError("injected failure: copy")
            return original(*args)

        monkeypatch.setattr(publish_module, "_order_by", fail_on_third_table)
    elif failure == "meta":
        monkeypatch.setattr(publish_module, "_write_meta", boom)
    elif failure == "rename":
        monkeypatch.setattr(publish_module.os, "replace", boom)

    with pytest.raises((RuntimeError, ValueError)):
        publish_warehouse(build, published_dir, source_run="bad", **kwargs)
    assert file_state(published_dir / "warehouse.duckdb") == before
    assert not temp_files(published_dir)
    assert read_publication(published_dir).version_id == good.version_id
    monkeypatch.undo()
    assert publish_warehouse(build, published_dir, source_run="next").previous_version_id == good.version_id


def test_a_missing_build_warehouse_publishes_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        publish_warehouse(tmp_path / "nope.duckdb", tmp_path / "pub", source_run="r")
    assert not (tmp_path / "pub" / "warehouse.duckdb").exists()


def test_stale_temporary_files_of_a_crashed_publisher_are_removed(build, tmp_path):
    published_dir = tmp_path / "pub"
    published_dir.mkdir()
    stale = published_dir / ".warehouse.duckdb.20200101T000000.000000Z-abcdef.tmp"
    stale.write_bytes(b"half a database")
    (published_dir / f"{stale.name}.wal").write_bytes(b"x")
    publish_warehouse(build, published_dir, source_run="r")
    assert not temp_files(published_dir)


def test_open_published_without_a_copy_raises_a_clear_error(tmp_path):
    with pytest.raises(PublishedWarehouseMissing, match="No published warehouse"):
        with open_published(tmp_path / "nothing"):
            pass


def test_published_path_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "d"))
    monkeypatch.delenv("PUBLISHED_WAREHOUSE", raising=False)
    assert published_path() == tmp_path / "d" / "published" / "warehouse.duckdb"
    monkeypatch.setenv("PUBLISHED_WAREHOUSE", str(tmp_path / "x.duckdb"))
    assert published_path() == tmp_path / "x.duckdb"
    assert published_path(tmp_path / "folder") == tmp_path / "folder" / "warehouse.duckdb"


def test_an_open_reader_keeps_its_version_and_never_blocks_publishing(build, tmp_path):
    published_dir = tmp_path / "pub"
    first = publish_warehouse(build, published_dir, source_run="run-1")
    with open_published(published_dir) as old:
        assert old.execute("SELECT version_id FROM meta.publication").fetchall() == [(first.version_id,)]
        # the pipeline changes the build warehouse and publishes while the reader is open
        with duckdb.connect(str(build)) as con:
            con.execute("DELETE FROM ml.store_sales_forecast WHERE store_id = 1")
        second = publish_warehouse(build, published_dir, source_run="run-2")
        # the open reader still sees exactly its version, the old inode
        assert old.execute("SELECT version_id FROM meta.publication").fetchall() == [(first.version_id,)]
        assert old.execute("SELECT count(*) FROM ml.store_sales_forecast").fetchall()[0][0] == \
            first.tables["ml.store_sales_forecast"]
        with open_published(published_dir) as new:
            assert new.execute("SELECT version_id FROM meta.publication").fetchall() == [(second.version_id,)]
            assert new.execute("SELECT count(*) FROM ml.store_sales_forecast").fetchall()[0][0] == \
                second.tables["ml.store_sales_forecast"] < first.tables["ml.store_sales_forecast"]


def test_duckdb_connect_would_serve_a_stale_version_which_is_why_readers_attach(build, tmp_path):
    """Documents the DuckDB pitfall the readers avoid: the per-process instance cache."""
    published_dir = tmp_path / "pub"
    first = publish_warehouse(build, published_dir, source_run="run-1")
    target = str(published_dir / "warehouse.duckdb")
    held = duckdb.connect(target, read_only=True)
    try:
        second = publish_warehouse(build, published_dir, source_run="run-2")
        again = duckdb.connect(target, read_only=True)  # same path while `held` is open: cached instance
        stale = again.execute("SELECT version_id FROM meta.publication").fetchall()[0][0]
        again.close()
        with open_published(published_dir) as con:
            fresh = con.execute("SELECT version_id FROM meta.publication").fetchall()[0][0]
    finally:
        held.close()
    assert stale == first.version_id
    assert fresh == second.version_id


def _change_build(path: Path, generation: int) -> None:
    """A new 'run': every table changes size and content, so a mixed read could not match any record."""
    with duckdb.connect(str(path)) as con:
        con.execute(f"""
            CREATE OR REPLACE TABLE marts.generation_a AS
            SELECT {generation} AS generation, range AS i FROM range({1000 + 37 * generation});
            CREATE OR REPLACE TABLE ml.generation_b AS
            SELECT {generation} AS generation, range AS i FROM range({500 + 11 * generation});
            UPDATE ml.store_sales_forecast SET sales_pred = sales_pred + 1;
            DELETE FROM marts.fct_store_daily_features
            WHERE (store_id, sale_date) IN (SELECT store_id, min(sale_date) FROM marts.fct_store_daily_features
                                            GROUP BY store_id);
        """)


def test_readers_in_another_process_see_one_version_at_a_time_while_publishing(build, tmp_path):
    """Proof of independence, publishing side: a separate reader process queries the published copy in a
    loop (short-lived connections and the API's cached reader, alternately) while the build warehouse
    is rewritten and published again and again. Zero errors on both sides, every read matches exactly
    one publication's recorded row counts and checksums, and versions only move forward."""
    published_dir = tmp_path / "published"
    _change_build(build, 0)
    publish_warehouse(build, published_dir, source_run="gen-0")
    stop, ready, out = tmp_path / "stop", tmp_path / "ready", tmp_path / "probe.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    reader = subprocess.Popen(
        [sys.executable, "-m", "serving.probe", "--published", str(published_dir), "--stop-file", str(stop),
         "--ready-file", str(ready), "--out", str(out)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    published = []
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert reader.poll() is None and time.monotonic() < deadline, reader.stdout.read()
            time.sleep(0.05)
        time.sleep(0.3)
        for generation in range(1, 9):
            _change_build(build, generation)  # the build warehouse is written while the reader reads
            published.append(publish_warehouse(build, published_dir, source_run=f"gen-{generation}").version_id)
            time.sleep(0.15)
        time.sleep(0.3)
    finally:
        stop.touch()
        output = reader.communicate(timeout=120)[0]
    result = json.loads(out.read_text())
    assert reader.returncode == 0 and result["errors"] == [], (output, result["errors"][:5])
    seen = [v["version_id"] for v in result["versions"]]
    assert len(seen) >= 4, f"the reader saw too few versions to prove anything: {seen}"
    assert seen[-1] == published[-1]
    assert set(seen[1:]) <= set(published) and seen == sorted(seen)
    assert result["iterations"] > 3 * len(seen) and result["missing"] == 0


def test_the_probe_detects_data_that_does_not_match_its_publication(build, tmp_path):
    """The consistency check above is not vacuous: a copy whose data differs from its record fails it."""
    from serving.probe import check_once

    version = publish_warehouse(build, tmp_path / "pub", source_run="r")
    tampered = tmp_path / "tampered.duckdb"
    tampered.write_bytes(version.path.read_bytes())
    with duckdb.connect(str(tampered)) as con:
        assert check_once(con)[2] == []
        con.execute("UPDATE ml.store_sales_forecast SET sales_pred = sales_pred + 1 WHERE store_id = 2")
        problems = check_once(con)[2]
    assert len(problems) == 1 and "ml.store_sales_forecast" in problems[0]
