"""The Streamlit dashboard over the published warehouse: ``app.py`` (entry, ``make dashboard``), ``data.py``
(the SQL reads), ``charts.py`` (altair charts), ``insights.py`` (one chart per insight table)."""
