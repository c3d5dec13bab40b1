{#
    Multi-column uniqueness (same idea as dbt_utils.unique_combination_of_columns,
    written here because the project installs no packages).
    Fails with one row per duplicated key combination.

    usage (model level):
      data_tests:
        - unique_combination_of_columns:
            arguments:
              combination_of_columns: [store_id, sale_date]
#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

{%- set columns_csv = combination_of_columns | join(', ') %}

select
    {{ columns_csv }},
    count(*) as n_records
from {{ model }}
group by {{ columns_csv }}
having count(*) > 1

{% endtest %}
