{{ config(materialized='table') }}

-- Long closures of each store over its history and plan rows (macro store_closure_spells, the
-- definition the store-day features use too): runs of at least
-- {{ var('long_closure_min_days') }} calendar days closed or without rows, with the reopening
-- day; a spell of at least {{ var('refurbishment_min_days') }} days is a refurbishment.

{{ store_closure_spells(ref('int_store_days')) }}
