-- Compaction: the latest ingested version of each command, newest first.
SELECT *
FROM read_parquet(${files}, hive_partitioning = false, union_by_name = true)
QUALIFY row_number() OVER (PARTITION BY command_id ORDER BY ingested_at DESC, run_id DESC) = 1
ORDER BY requested_date_time DESC, command_id
