-- Each store's customer-sales segment: the KMeans cluster (ml.customer_sales_clusters, written by
-- forecasting.segments) that most of its store-months fall in, with that cluster's centre, how
-- consistently the store stays in it and its latest month's cluster. Clusters are numbered by their
-- centre's monthly sales, 0 = lowest.
--
-- The ml tables are written by the segments step; until it has run (tables missing) the model builds
-- empty instead of failing the other forecast marts.

{%- set clusters_source = source('ml', 'customer_sales_clusters') -%}
{%- set centers_source = source('ml', 'customer_sales_cluster_centers') -%}
{%- set segments_written = true -%}
{%- if execute -%}
    {%- set clusters_relation = adapter.get_relation(
        database=clusters_source.database, schema=clusters_source.schema,
        identifier=clusters_source.identifier) -%}
    {%- set centers_relation = adapter.get_relation(
        database=centers_source.database, schema=centers_source.schema,
        identifier=centers_source.identifier) -%}
    {%- set segments_written = clusters_relation is not none and centers_relation is not none -%}
    {%- if not segments_written -%}
        {{ log("dim_store_segment: ml.customer_sales_clusters / _centers not written yet; building it empty", info=true) }}
    {%- endif -%}
{%- endif %}

with

{% if segments_written %}
clusters as (

    select * from {{ clusters_source }}

),

centers as (

    select * from {{ centers_source }}

),
{% else %}
clusters as (

    select
        cast(null as integer) as store_id,
        cast(null as date) as month,
        cast(null as integer) as cluster,
        cast(null as double) as customers,
        cast(null as double) as sales
    where false

),

centers as (

    select
        cast(null as integer) as cluster,
        cast(null as double) as customers,
        cast(null as double) as sales,
        cast(null as bigint) as n_store_months
    where false

),
{% endif %}

stores as (

    select * from {{ ref('dim_stores') }}

),

store_cluster_months as (

    select
        store_id,
        cluster,
        count(*) as n_months,
        max(month) as last_month_in_cluster

    from clusters
    group by all

),

dominant as (

    -- most months; ties: the cluster the store was in most recently, then the lower cluster
    select
        store_id,
        cluster as dominant_cluster,
        n_months as n_months_in_dominant_cluster

    from store_cluster_months
    qualify row_number() over (
        partition by store_id
        order by n_months desc, last_month_in_cluster desc, cluster
    ) = 1

),

per_store as (

    select
        store_id,
        count(*) as n_store_months,
        count(distinct cluster) as n_clusters,
        min(month) as first_month,
        max(month) as last_month,
        arg_max(cluster, month) as latest_cluster,
        avg(sales) as avg_monthly_sales,
        avg(customers) as avg_monthly_customers

    from clusters
    group by store_id

),

final as (

    select
        per_store.store_id,
        stores.store_type,
        stores.assortment,
        cast(dominant.dominant_cluster as integer) as dominant_cluster,
        centers.customers as dominant_cluster_center_customers,
        centers.sales as dominant_cluster_center_sales,
        cast(per_store.n_store_months as integer) as n_store_months,
        cast(dominant.n_months_in_dominant_cluster as integer) as n_months_in_dominant_cluster,
        dominant.n_months_in_dominant_cluster / per_store.n_store_months as dominant_cluster_share,
        cast(per_store.n_clusters as integer) as n_clusters,
        per_store.first_month,
        per_store.last_month,
        cast(per_store.latest_cluster as integer) as latest_cluster,
        per_store.avg_monthly_sales,
        per_store.avg_monthly_customers

    from per_store
    inner join dominant
        on per_store.store_id = dominant.store_id
    left join centers
        on dominant.dominant_cluster = centers.cluster
    left join stores
        on per_store.store_id = stores.store_id

)

select * from final
order by store_id
