-- Format 2 -> 3: each distinct bad record once, its latest sighting.
SELECT *
FROM read_parquet(${files}, hive_partitioning = true, union_by_name = true,
    hive_types = {'account_id': VARCHAR, 'region': VARCHAR})
QUALIFY row_number() OVER (
    PARTITION BY account_id, region, raw_json ORDER BY ingested_at DESC, run_id DESC
) = 1
