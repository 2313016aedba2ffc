-- One row per plugin of each invocation's current state (see invocations.sql):
-- plugin rows belong to the invocation version they were ingested with, so a
-- plugin list that changed length never leaves stale rows behind.
CREATE OR REPLACE VIEW command_plugins AS
SELECT
    p.account_id,
    p.region,
    p.command_id,
    p.instance_id,
    p.requested_date,
    p.plugin_index,
    p.name,
    p.status,
    p.status_details,
    p.response_code,
    p.response_start_date_time,
    p.response_finish_date_time,
    p.output,
    p.standard_output_url,
    p.standard_error_url,
    p.output_s3_region,
    p.output_s3_bucket_name,
    p.output_s3_key_prefix,
    p.run_id,
    p.ingested_at,
    p.requested_month
FROM read_parquet(
    ${command_plugins_files},
    hive_partitioning = true,
    -- Every file of a format version has the declared schema, so DuckDB need not
    -- reconcile footers (union_by_name): several times faster over many files.
    hive_types = {'account_id': VARCHAR, 'region': VARCHAR, 'requested_month': VARCHAR}
) AS p
SEMI JOIN invocations AS i
    USING (account_id, region, requested_month, command_id, instance_id, run_id, ingested_at)
-- A compaction's new file and the files it replaces coexist for a grace period.
QUALIFY row_number() OVER (
    PARTITION BY p.account_id, p.region, p.command_id, p.instance_id, p.plugin_index
) = 1;
