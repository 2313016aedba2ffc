-- Format 2 -> 3: the plugins of each invocation's latest version (the one
-- v3_invocations keeps), each once.
WITH versions AS (
    SELECT account_id, region, requested_month, command_id, instance_id, run_id, ingested_at
    FROM read_parquet(${invocations}, hive_partitioning = true, union_by_name = true,
        hive_types = {'account_id': VARCHAR, 'region': VARCHAR, 'requested_month': VARCHAR})
    QUALIFY row_number() OVER (
        PARTITION BY account_id, region, command_id, instance_id
        ORDER BY ingested_at DESC, run_id DESC
    ) = 1
)
SELECT p.*
FROM read_parquet(${files}, hive_partitioning = true, union_by_name = true,
    hive_types = {'account_id': VARCHAR, 'region': VARCHAR, 'requested_month': VARCHAR}) AS p
SEMI JOIN versions
    USING (account_id, region, requested_month, command_id, instance_id, run_id, ingested_at)
QUALIFY row_number() OVER (
    PARTITION BY account_id, region, command_id, instance_id, plugin_index
) = 1
