-- Customer and sales aggregates of the history per store and calendar week (ISO weeks, starting Monday),
-- over the days that have history rows (missing days are not filled).

{{ store_period_aggregates('week_start', ['iso_year', 'week_of_year']) }}
