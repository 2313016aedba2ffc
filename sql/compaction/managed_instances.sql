-- Compaction: every inventory snapshot row, once, oldest snapshot first.
SELECT *
FROM read_parquet(${files}, hive_partitioning = false, union_by_name = true)
QUALIFY row_number() OVER (PARTITION BY run_id, instance_id ORDER BY ingested_at DESC) = 1
ORDER BY ingested_at, instance_id
