-- Format 2 -> 3: each ledger row once (run x account x region).
SELECT *
FROM read_parquet(${files}, hive_partitioning = true, union_by_name = true,
    hive_types = {'account_id': VARCHAR, 'region': VARCHAR})
QUALIFY row_number() OVER (
    PARTITION BY run_id, account_id, region ORDER BY finished_at DESC
) = 1
