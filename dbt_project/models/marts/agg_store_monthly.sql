-- Customer and sales aggregates of the history per store and calendar month,
-- over the days that have history rows (missing days are not filled).

{{ store_period_aggregates('month_start') }}
