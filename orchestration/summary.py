"""Printed at the end of `make run`: where the tables are, what they hold, and queries to start from."""

from __future__ import annotations

import textwrap

import duckdb

from settings import Settings

EXAMPLE_QUERIES = {
    "Latest forecast per model for store 1": """
SELECT forecast_date, model, round(sales_pred) AS sales_pred, round(sales_lower) AS lower,
       round(sales_upper) AS upper
FROM marts.fct_sales_forecast
WHERE store_id = 1 AND is_latest_version
ORDER BY forecast_date, model
LIMIT 6""",
    "Latest version of each model, the champion first": """
SELECT rank, model, model_version, round(validation_rmspe, 4) AS validation_rmspe,
       round(mean_rmspe, 4) AS mean_rmspe, is_champion
FROM marts.dim_model_versions
WHERE is_latest
ORDER BY rank""",
    "This run's retraining decisions (refit or forecast-only, and why)": """
SELECT model, decision, reason
FROM ml.training_decisions
WHERE run_id = (SELECT run_id FROM ml.training_decisions ORDER BY created_at DESC LIMIT 1)
ORDER BY model""",
    "Monthly forecast totals, all stores": """
SELECT month_start, model, round(sum(sales_pred)) AS sales_pred
FROM marts.fct_sales_forecast_monthly
WHERE is_latest_version
GROUP BY ALL ORDER BY month_start, model""",
}


def print_summary(settings: Settings) -> None:
    published = settings.published_path
    with duckdb.connect(str(settings.build_warehouse), read_only=True) as con:
        tables = con.execute("""
            SELECT schema_name, table_name, estimated_size AS approx_rows
            FROM duckdb_tables() WHERE schema_name IN ('raw', 'marts', 'ml')
            ORDER BY schema_name, table_name""").fetchall()
        print(f"\nWarehouse: {settings.build_warehouse}")
        print(f"Input data: {settings.input_dir}{' (embedded default)' if settings.uses_default_data else ''}")
        print(f"Published read-only copy for BI tools, `make serve` and `make dashboard`: "
              f"{published}")
        print(f"Model artifacts: {settings.models_dir}   Data Docs: {settings.reports_dir / 'data_docs' / 'index.html'}")
        print("\nTables (approximate rows; the README's table list says what each answers):")
        for schema in dict.fromkeys(t[0] for t in tables):
            listed = ", ".join(f"{name} ({rows:,})" for s, name, rows in tables if s == schema)
            print(textwrap.fill(listed, width=110, initial_indent=f"  {schema}: ", subsequent_indent="    "))
        print(f"\nQuery it from any DuckDB client, e.g.: .venv/bin/python -c \"import duckdb; "
              f"print(duckdb.connect('{published}', read_only=True).sql('SELECT ...'))\"")
        for title, sql in EXAMPLE_QUERIES.items():
            print(f"\n-- {title}{sql};")
            print(con.sql(sql))


if __name__ == "__main__":
    print_summary(Settings.from_env())
