-- Records the API returned that could not be stored faithfully, with the reason
-- and the raw JSON, one row per distinct record (latest sighting).
CREATE OR REPLACE VIEW quarantine AS
SELECT
    account_id,
    region,
    reason,
    raw_json,
    run_id,
    ingested_at
FROM read_parquet(
    ${quarantine_files},
    hive_partitioning = true,
    union_by_name = true,
    hive_types = {'account_id': VARCHAR, 'region': VARCHAR}
)
QUALIFY row_number() OVER (
    PARTITION BY account_id, region, raw_json
    ORDER BY ingested_at DESC, run_id DESC
) = 1;
