"""Set up and start Superset on the published copy (`make bi`); runs with the BI virtualenv's Python.

1. Superset's home is ``DATA_DIR/bi`` (``BI_HOME``): a secret key generated once, the sqlite metadata database.
2. ``superset db upgrade`` and ``superset init`` (roles and permissions), then an admin user: ``BI_ADMIN_USER``
   (default ``admin``) / ``BI_ADMIN_PASSWORD`` (default: generated once into ``BI_HOME/admin_password`` and printed).
3. Imports the dashboard kept in ``bi/dashboard/`` (a Superset export as readable YAML): it is zipped with the
   database's URI pointing at this checkout's published copy and each chart's query context derived from its
   parameters (the one description of a chart), then ``superset set-database-uri`` moves a database imported
   earlier to the current path.
4. ``superset run`` on ``127.0.0.1:$BI_PORT`` (default 8088) unless ``--setup-only``.

The connection opens the copy ``read_only`` and, with Superset's NullPool, anew for every query: a query after
a publication reads the new file (the rename leaves an open connection on the old one).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import yaml

BI_DIR = Path(__file__).resolve().parent
REPO = BI_DIR.parent
sys.path.insert(0, str(REPO))
from settings import Settings  # noqa: E402  (stdlib only: the platform's one reading of DATA_DIR and the paths)

EXPORT_DIR = BI_DIR / "dashboard"
DATABASE_NAME = "Rossmann published warehouse"
DATABASE_URI_PLACEHOLDER = "duckdb:///PUBLISHED_WAREHOUSE"


def bi_home(settings: Settings) -> Path:
    return settings.data_dir / "bi"


def database_uri(published: Path) -> str:
    return f"duckdb:///{published.resolve()}"  # four slashes in all: the path is absolute


def superset_env(home: Path) -> dict[str, str]:
    return {**os.environ, "BI_HOME": str(home), "SUPERSET_CONFIG_PATH": str(BI_DIR / "superset_config.py"),
            "FLASK_APP": "superset", "SUPERSET_HOME": str(home)}


def superset(home: Path, *args: str) -> None:
    executable = Path(sys.executable).with_name("superset")
    proc = subprocess.run([str(executable), *args], env=superset_env(home), capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"`superset {' '.join(args[:2])}` failed ({proc.returncode}):\n"
                         f"{(proc.stdout + proc.stderr)[-4000:]}")


def read_or_create(path: Path, make) -> str:
    """The secret in ``path``, created (mode 0600) on first use."""
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


# ------------------------------------------------------------------------------ the export


def _filter_clauses(adhoc_filters: list[dict]) -> tuple[list[dict], list[str]]:
    simple, where = [], []
    for f in adhoc_filters:
        if f.get("expressionType") == "SQL":
            where.append(f"({f['sqlExpression']})")
        else:
            simple.append({"col": f["subject"], "op": f["operator"], "val": f.get("comparator")})
    return simple, where


def query_context(params: dict) -> dict:
    """The query Superset's frontend builds for these chart parameters (what `/api/v1/chart/{id}/data` runs)."""
    columns: list = []
    if params.get("x_axis"):
        axis = {"columnType": "BASE_AXIS", "sqlExpression": params["x_axis"], "label": params["x_axis"],
                "expressionType": "SQL"}
        if params.get("time_grain_sqla"):
            axis["timeGrain"] = params["time_grain_sqla"]
        columns.append(axis)
    columns += params.get("groupby", []) + params.get("all_columns", [])
    metrics = params.get("metrics") or ([params["metric"]] if params.get("metric") else [])
    filters, where = _filter_clauses(params.get("adhoc_filters", []))
    query = {"columns": columns, "metrics": metrics, "filters": filters,
             "extras": {"where": " AND ".join(where), "having": ""},
             "orderby": [[m, False] for m in metrics[:1]] if not params.get("x_axis") and metrics else [],
             "row_limit": params.get("row_limit", 10000), "time_range": "No filter", "applied_time_extras": {},
             "annotation_layers": [], "url_params": {}, "custom_params": {}, "custom_form_data": {}}
    return {"datasource": {"id": 0, "type": "table"}, "force": False, "queries": [query], "form_data": params,
            "result_format": "json", "result_type": "full"}


def build_export(published: Path, target: Path) -> Path:
    """``bi/dashboard/`` zipped as Superset imports it, for the copy at ``published``."""
    with zipfile.ZipFile(target, "w") as bundle:
        for path in sorted(EXPORT_DIR.rglob("*.yaml")):
            relative = path.relative_to(EXPORT_DIR)
            text = path.read_text()
            if relative.parts[0] == "databases":
                text = text.replace(DATABASE_URI_PLACEHOLDER, database_uri(published))
            elif relative.parts[0] == "charts":
                chart = yaml.safe_load(text)
                chart["query_context"] = json.dumps(query_context(chart["params"]))
                text = yaml.safe_dump(chart, sort_keys=False)
            bundle.writestr(f"dashboard_export/{relative}", text)
    return target


# ------------------------------------------------------------------------------ set up, run


def setup(settings: Settings) -> Path:
    published = settings.published_path
    if not published.exists():
        raise SystemExit(f"no published copy at {published}: run the pipeline first (`make run`), "
                         "or point PUBLISHED_WAREHOUSE at one")
    home = bi_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    read_or_create(home / "secret_key", lambda: secrets.token_urlsafe(48))
    user = os.environ.get("BI_ADMIN_USER") or "admin"
    password = os.environ.get("BI_ADMIN_PASSWORD") or read_or_create(
        home / "admin_password", lambda: print_once(secrets.token_urlsafe(12), home))
    superset(home, "db", "upgrade")
    superset(home, "init")
    superset(home, "fab", "create-admin", "--username", user, "--password", password, "--firstname", "Superset",
             "--lastname", "Admin", "--email", f"{user}@localhost")
    with tempfile.TemporaryDirectory() as tmp:
        bundle = build_export(published, Path(tmp) / "dashboard_export.zip")
        superset(home, "import-dashboards", "--path", str(bundle), "--username", user)
    superset(home, "set-database-uri", "--database_name", DATABASE_NAME, "--uri", database_uri(published),
             "--skip_create")
    return home


def print_once(password: str, home: Path) -> str:
    print(f"Superset admin password (generated; kept in {home / 'admin_password'}): {password}", flush=True)
    return password


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("BI_PORT") or 8088))
    parser.add_argument("--setup-only", action="store_true", help="set up and import, do not start the server")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    home = setup(settings)
    print(f"Superset: dashboard 'Rossmann forecasts' on {settings.published_path}", flush=True)
    if args.setup_only:
        return 0
    print(f"Superset at http://{args.host}:{args.port}/", flush=True)
    executable = Path(sys.executable).with_name("superset")
    os.execve(executable, [str(executable), "run", "-h", args.host, "-p", str(args.port), "--with-threads"],
              superset_env(home))


if __name__ == "__main__":
    sys.exit(main())
