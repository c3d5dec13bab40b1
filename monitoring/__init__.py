"""Operations: alerts (``alerts.py``: the JSON lines file and webhooks) and the drift and degradation checks
(``checks.py``: computations over the build warehouse's forecast marts, results in ``ml.monitoring_checks``)."""
