-- Format 2 -> 3: each command once, its latest ingested state.
SELECT *
FROM read_parquet(${files}, hive_partitioning = true, union_by_name = true,
    hive_types = {'account_id': VARCHAR, 'region': VARCHAR, 'requested_month': VARCHAR})
QUALIFY row_number() OVER (
    PARTITION BY account_id, region, command_id ORDER BY ingested_at DESC, run_id DESC
) = 1
