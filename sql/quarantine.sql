-- Records the API returned that could not be stored faithfully, with the reason
-- and the raw JSON, one row per distinct record (its latest sighting).
CREATE OR REPLACE VIEW quarantine AS
SELECT
    account_id,
    region,
    reason,
    raw_json,
    run_id,
    ingested_at
FROM ${quarantine};
