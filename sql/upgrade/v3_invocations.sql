-- Format 2 -> 3: each invocation once, in its most recently ingested state (what
-- the format-2 views showed), with the partition from the file's path.
SELECT *, CAST(NULL AS TIMESTAMPTZ) AS expired_while_open_at
FROM read_parquet(${files}, hive_partitioning = true, union_by_name = true,
    hive_types = {'account_id': VARCHAR, 'region': VARCHAR, 'requested_month': VARCHAR})
QUALIFY row_number() OVER (
    PARTITION BY account_id, region, command_id, instance_id
    ORDER BY ingested_at DESC, run_id DESC
) = 1
