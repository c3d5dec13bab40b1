{#
    The column holds every one of `values` at least once (as GX's
    expect_column_distinct_values_to_contain_set). Fails with one row per value that
    never occurs, so an empty model fails too. Strings are quoted; other values are
    written as SQL literals (true, false, 3).

    usage:
      - name: is_history
        data_tests:
          - contains_values:
              arguments:
                values: [true, false]
#}
{% test contains_values(model, column_name, values) %}

with

expected as (

    select * from (values
        {%- for value in values %}
        ({% if value is string %}'{{ value }}'{% else %}{{ value }}{% endif %}){{ "," if not loop.last }}
        {%- endfor %}
    ) as expected_values (expected_value)

)

select expected_value as missing_value
from expected
where not exists (
    select 1 from {{ model }} where {{ column_name }} = expected.expected_value
)

{% endtest %}
