"""What the Dagster UI shows of a run (the session's pipeline run, tests/conftest.py): row counts and column types
of the tables, owners and descriptions, checks reported as checks, and charts whose legends leave the data visible."""

import duckdb
import pandas as pd
import pytest
from dagster import AssetKey, DagsterEventType
from matplotlib.backends.backend_agg import FigureCanvasAgg

from analytics import charts
from analytics.segments import compute_segments, load_store_months
from orchestration.assets.metadata import COLUMN_SCHEMA, ROW_COUNT
from orchestration.definitions import ALL_ASSETS

NOT_TABLES = {"models"}  # the model assets are trained estimators, not tables
SPECS = {spec.key: spec for assets_def in ALL_ASSETS for spec in assets_def.specs}
DBT_KEYS = {key for assets_def in ALL_ASSETS if assets_def.op.name in ("warehouse_models", "forecast_marts")
            for key in assets_def.keys}


@pytest.fixture(scope="module")
def materializations(pipeline_warehouse):
    return {e.asset_key: e.event_specific_data.materialization
            for e in pipeline_warehouse.result.get_asset_materialization_events()}


@pytest.fixture(scope="module")
def build(pipeline_warehouse):
    with duckdb.connect(str(pipeline_warehouse.build_warehouse), read_only=True) as con:
        yield con


def test_every_table_asset_reports_its_row_count(pipeline_warehouse, materializations, build):
    tables = {key: m for key, m in materializations.items() if key.path[0] not in NOT_TABLES}
    assert {AssetKey(["raw", "sales"]), AssetKey(["ml", "store_sales_forecast"]),
            AssetKey(["ml", "customer_sales_clusters"]), AssetKey(["marts", "insight_promo_effect"]),
            AssetKey(["published", "warehouse"])} <= set(tables)
    for key, m in tables.items():
        assert ROW_COUNT in m.metadata, key
        if key == AssetKey(["published", "warehouse"]):
            with duckdb.connect(str(pipeline_warehouse.published), read_only=True) as con:
                expected = con.execute("SELECT sum(n_rows) FROM meta.published_tables").fetchall()[0][0]
        else:
            schema, table = key.path
            expected = build.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchall()[0][0]
        assert m.metadata[ROW_COUNT].value == expected, key


def test_dbt_assets_show_column_types_and_descriptions(materializations, build):
    assert len(DBT_KEYS) > 25 and DBT_KEYS <= set(materializations)
    for key in DBT_KEYS:
        schema, table = key.path
        built = build.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? "
                              "AND table_name = ? ORDER BY ordinal_position", [schema, table]).fetchall()
        columns = materializations[key].metadata[COLUMN_SCHEMA].value.columns
        assert [(c.name, c.type) for c in columns] == built, key
        documented = {c.name: c.description for c in SPECS[key].metadata[COLUMN_SCHEMA].columns if c.description}
        assert documented, f"{key}: no column documented in dbt's YAML"
        assert {c.name: c.description for c in columns if c.name in documented} == documented, key


def test_every_asset_has_an_owner_and_a_description():
    for key, spec in SPECS.items():
        assert spec.description, key
        assert [o for o in spec.owners if o.startswith("team:")], key
    assert SPECS[AssetKey(["raw", "sales"])].owners == ["team:data-engineering"]
    assert SPECS[AssetKey(["marts", "fct_store_daily_features"])].owners == ["team:data-engineering"]
    assert SPECS[AssetKey(["models", "lstm"])].owners == ["team:data-science"]


def test_dbt_tests_report_as_asset_checks(pipeline_warehouse):
    result = pipeline_warehouse.result
    observations = [e for e in result.all_events if e.event_type == DagsterEventType.ASSET_OBSERVATION]
    assert observations == []
    checked = {(e.asset_key, e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    # the `ml` source tests run by the forecast marts' `dbt build` are checks of the tables ml_tables writes
    source_checks = {k: p for k, p in checked.items()
                     if k[0] == AssetKey(["ml", "store_sales_forecast"]) and k[1].startswith("source_")}
    assert len(source_checks) >= 3 and all(source_checks.values())
    assert checked[(AssetKey(["raw", "sales"]), "great_expectations")]


@pytest.fixture
def drawn(monkeypatch):
    """Every figure a chart function renders."""
    figures, render = [], charts._png
    monkeypatch.setattr(charts, "_png", lambda fig: figures.append(fig) or render(fig))
    return figures


def test_legends_never_cover_the_data(pipeline_warehouse, drawn):
    with duckdb.connect(str(pipeline_warehouse.published), read_only=True) as con:
        for model in ("insight_promo_effect", "insight_promo_distribution", "insight_holiday_effect",
                      "insight_seasonality", "insight_sales_customers"):
            charts.insight_chart_png(model, con.execute(f"SELECT * FROM marts.{model}").df())
        segments = compute_segments(load_store_months(con), 3)
    charts.chart_silhouette(segments.silhouette, segments.n_clusters)
    days = pd.date_range("2015-07-01", periods=14)
    charts.forecast_vs_actual_markdown(pd.DataFrame({
        "store_id": [1] * 14 + [2] * 14, "sale_date": list(days) * 2, "sales": 100.0, "sales_pred": 110.0,
        "sales_lower": 90.0, "sales_upper": 130.0}), "validation fold", 0.8)
    legends = 0
    for fig in drawn:
        renderer = FigureCanvasAgg(fig).get_renderer()
        fig.draw(renderer)
        for legend in [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]:
            legends += 1
            box = legend.get_window_extent(renderer)
            assert not [ax for ax in fig.axes if box.overlaps(ax.get_window_extent(renderer))], \
                fig.axes[0].get_title()
    assert legends >= 6  # every chart above but sales-customers has one
