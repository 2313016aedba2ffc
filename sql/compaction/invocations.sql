-- Compaction: the latest ingested version of each invocation in one partition,
-- sorted newest first so row-group statistics prune date filters.
SELECT *
FROM read_parquet(${files}, hive_partitioning = false, union_by_name = true)
QUALIFY row_number() OVER (
    PARTITION BY command_id, instance_id
    ORDER BY ingested_at DESC, run_id DESC
) = 1
ORDER BY requested_date_time DESC, command_id, instance_id
