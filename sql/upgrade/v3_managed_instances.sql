-- Format 2 -> 3: format 2 kept every run's inventory snapshot; format 3 keeps each
-- region's latest one (the one the format-2 view showed), each instance once.
WITH snapshots AS (
    SELECT *
    FROM read_parquet(${files}, hive_partitioning = true, union_by_name = true,
        hive_types = {'account_id': VARCHAR, 'region': VARCHAR})
)
SELECT *
FROM snapshots
SEMI JOIN (
    SELECT account_id, region, max(ingested_at) AS ingested_at
    FROM snapshots
    GROUP BY account_id, region
) USING (account_id, region, ingested_at)
QUALIFY dense_rank() OVER (PARTITION BY account_id, region ORDER BY run_id DESC) = 1
    AND row_number() OVER (PARTITION BY account_id, region, instance_id ORDER BY run_id DESC) = 1
