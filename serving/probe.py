"""A reader that checks the published warehouse in a loop: the proof-of-independence tests run it in a
separate process while the pipeline publishes.

Every iteration opens the published copy read-only (alternating :func:`serving.reader.open_published`
and the API's cached per-version reader), and in that one connection reads ``meta.publication`` and
recomputes the row count and checksum of every table listed in ``meta.published_tables``. A result is
consistent when each table matches what the publisher recorded for that version -- i.e. everything the
reader saw came from exactly one published version. It also checks that versions only move forward.

    python -m serving.probe --published DATA_DIR/published --stop-file /tmp/stop --out probe.json

Writes a JSON summary: iterations, errors (exceptions and inconsistencies), the versions seen in order.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

from serving.reader import PublishedReader, PublishedWarehouseMissing, open_published
from ingestion.sql_text import sql_identifier
from warehouse.publish import table_fingerprint_sql


def check_once(con) -> tuple[str, str, list[str]]:
    """(version_id, published_at ISO, problems) for one open connection to a published copy."""
    version_id, published_at = con.execute("SELECT version_id, published_at FROM meta.publication").fetchall()[0]
    recorded = con.execute(
        "SELECT table_schema, table_name, n_rows, checksum FROM meta.published_tables ORDER BY 1, 2").fetchall()
    problems = []
    if not recorded:
        problems.append(f"{version_id}: meta.published_tables is empty")
    for schema, table, n_rows, checksum in recorded:
        actual = con.execute(table_fingerprint_sql(sql_identifier(schema, table))).fetchall()[0]
        if (actual[0], int(actual[1])) != (n_rows, int(checksum)):
            problems.append(f"{version_id}: {schema}.{table} has rows/checksum {actual[0]}/{actual[1]}, "
                            f"the publication recorded {n_rows}/{checksum}")
    return version_id, published_at.isoformat(), problems


def probe(published: str | os.PathLike, *, stop_file: str | os.PathLike | None = None,
          duration_s: float | None = None, pause_s: float = 0.0, allow_missing: bool = True) -> dict:
    api_reader = PublishedReader(published, mode="cached")
    deadline = time.monotonic() + duration_s if duration_s else None
    iterations, missing = 0, 0
    errors: list[str] = []
    versions: list[dict] = []  # in the order first seen
    last_published_at = ""
    while True:
        if stop_file and Path(stop_file).exists():
            break
        if deadline and time.monotonic() > deadline:
            break
        iterations += 1
        try:
            if iterations % 2:
                with open_published(published) as con:
                    version_id, published_at, problems = check_once(con)
            else:
                with api_reader.session() as s:
                    version_id, published_at, problems = check_once(s.con)
                    if s.version_id != version_id:
                        problems.append(f"API session says {s.version_id}, its connection reads {version_id}")
        except PublishedWarehouseMissing as exc:
            missing += 1
            if not allow_missing:
                errors.append(f"iteration {iterations}: {exc}")
            continue
        except Exception:  # noqa: BLE001 -- every failure is a finding
            errors.append(f"iteration {iterations}: {traceback.format_exc(limit=3)}")
            continue
        errors.extend(f"iteration {iterations}: {p}" for p in problems)
        if not versions or versions[-1]["version_id"] != version_id:
            if published_at < last_published_at:
                errors.append(f"iteration {iterations}: went back to {version_id} ({published_at}) after "
                              f"{versions[-1]['version_id']}")
            if any(v["version_id"] == version_id for v in versions):
                errors.append(f"iteration {iterations}: saw {version_id} again after a newer version")
            versions.append({"version_id": version_id, "published_at": published_at, "first_iteration": iterations})
            last_published_at = max(last_published_at, published_at)
        if pause_s:
            time.sleep(pause_s)
    return {"iterations": iterations, "missing": missing, "errors": errors, "versions": versions}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--published", required=True, help="published warehouse file or its folder")
    parser.add_argument("--stop-file", help="stop when this file exists")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between iterations")
    parser.add_argument("--out", help="write the JSON summary here (else stdout)")
    parser.add_argument("--ready-file", help="create this file once the loop has started")
    args = parser.parse_args(argv)
    if not (args.stop_file or args.duration):
        parser.error("give --stop-file or --duration")
    if args.ready_file:
        Path(args.ready_file).touch()
    result = probe(args.published, stop_file=args.stop_file, duration_s=args.duration, pause_s=args.pause)
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
