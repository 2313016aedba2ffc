-- Compaction: one row per distinct bad record (its latest sighting).
SELECT *
FROM read_parquet(${files}, hive_partitioning = false, union_by_name = true)
QUALIFY row_number() OVER (PARTITION BY raw_json ORDER BY ingested_at DESC, run_id DESC) = 1
ORDER BY ingested_at
