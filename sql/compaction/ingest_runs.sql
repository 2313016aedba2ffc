-- Compaction: every ledger row, once.
SELECT *
FROM read_parquet(${files}, hive_partitioning = false, union_by_name = true)
QUALIFY row_number() OVER (PARTITION BY run_id ORDER BY finished_at DESC) = 1
ORDER BY started_at, run_id
