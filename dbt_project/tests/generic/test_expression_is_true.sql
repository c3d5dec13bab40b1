{#
    Row-level assertion: fails with every row for which the expression is not true
    (a NULL result counts as a failure). Model level: `expression` is a full boolean
    SQL expression. Column level: `expression` is appended to the column name,
    e.g. ">= 0" (as in dbt_utils; written here because the project installs no packages).
    Filter rows with dbt's standard test `config: {where: ...}`.

    usage:
      data_tests:
        - expression_is_true:
            arguments:
              expression: "sales_upper >= sales_lower"
#}
{% test expression_is_true(model, expression, column_name=none) %}

select *
from {{ model }}
where not coalesce((
    {%- if column_name is not none %}{{ column_name }} {% endif -%}
    {{ expression }}
), false)

{% endtest %}
