-- The run ledger: one row per run x account x region (and per purge), with the
-- window it read, what it committed, its outcome and the watermark after it.
CREATE OR REPLACE VIEW ingest_runs AS
SELECT
    run_id,
    account_id,
    region,
    started_at,
    finished_at,
    window_start,
    window_end,
    pages,
    invocations,
    plugins,
    quarantined,
    status,
    error,
    watermark,
    purged_months
FROM read_parquet(
    ${ingest_runs_files},
    hive_partitioning = true,
    union_by_name = true,
    hive_types = {'account_id': VARCHAR, 'region': VARCHAR}
)
QUALIFY row_number() OVER (
    PARTITION BY run_id, account_id, region ORDER BY finished_at DESC
) = 1;
