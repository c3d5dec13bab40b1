"""The raw layout is declared once (ingestion/raw_layout.py); the dbt sources and the dbt tests that repeat its code
lists are checked against it here (the GX suites and the loader import it)."""

from __future__ import annotations

from pathlib import Path

import yaml

from ingestion.raw_layout import ASSORTMENTS, PROMO_INTERVALS, RAW_COLUMNS, RAW_SCHEMA, STATE_HOLIDAYS, STORE_TYPES

MODELS_DIR = Path(__file__).resolve().parents[1] / "dbt_project" / "models"
# Columns of dbt models that carry one of Kaggle's code lists (the staging names of the raw columns).
DOMAINS = {"state_holiday": STATE_HOLIDAYS, "store_type": STORE_TYPES, "assortment": ASSORTMENTS,
           "promo_interval": PROMO_INTERVALS}
# Models whose column holds only part of a code list, and that part.
NARROWED = {("insight_holiday_effect", "state_holiday"): [c for c in STATE_HOLIDAYS if c != "0"]}


def _yaml_files() -> list[dict]:
    return [yaml.safe_load(path.read_text()) or {} for path in sorted(MODELS_DIR.rglob("*.yml"))]


def test_dbt_sources_declare_the_raw_layout():
    sources = [s for doc in _yaml_files() for s in doc.get("sources", []) if s.get("schema") == RAW_SCHEMA]
    assert len(sources) == 1
    declared = {t["name"]: [(c["name"], c.get("data_type", "").upper()) for c in t.get("columns", [])]
                for t in sources[0]["tables"]}
    assert declared == {table: list(columns.items()) for table, columns in RAW_COLUMNS.items()}


def test_dbt_accepted_values_use_the_raw_code_lists():
    checked = {}
    for doc in _yaml_files():
        for model in doc.get("models", []):
            for column in model.get("columns", []):
                for test in column.get("data_tests", []):
                    if column["name"] in DOMAINS and isinstance(test, dict) and "accepted_values" in test:
                        spec = test["accepted_values"]
                        values = spec.get("arguments", spec)["values"]
                        key = (model["name"], column["name"])
                        checked[key] = values
                        assert values == NARROWED.get(key, list(DOMAINS[column["name"]])), key
    # not vacuous: the feature mart tests each of these
    assert {("fct_store_daily_features", c) for c in ("state_holiday", "store_type", "assortment")} <= set(checked)
