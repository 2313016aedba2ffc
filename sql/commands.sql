-- The commands behind the invocations (ListCommands), latest ingested state:
-- document, parameters (e.g. AWS-RunPatchBaseline's Operation: Scan or
-- Install, as parameters['Operation'][1]), targets and counts.
CREATE OR REPLACE VIEW commands AS
SELECT
    account_id,
    region,
    command_id,
    document_name,
    document_version,
    comment,
    expires_after,
    parameters,
    instance_ids,
    targets,
    requested_date_time,
    requested_date,
    status,
    status_details,
    output_s3_region,
    output_s3_bucket_name,
    output_s3_key_prefix,
    max_concurrency,
    max_errors,
    target_count,
    completed_count,
    error_count,
    delivery_timed_out_count,
    service_role,
    notification_arn,
    notification_events,
    notification_type,
    cloud_watch_log_group_name,
    cloud_watch_output_enabled,
    timeout_seconds,
    run_id,
    ingested_at,
    requested_month
FROM read_parquet(
    ${commands_files},
    hive_partitioning = true,
    -- Every file of a format version has the declared schema, so DuckDB need not
    -- reconcile footers (union_by_name): several times faster over many files.
    hive_types = {'account_id': VARCHAR, 'region': VARCHAR, 'requested_month': VARCHAR}
)
QUALIFY row_number() OVER (
    PARTITION BY account_id, region, command_id
    ORDER BY ingested_at DESC, run_id DESC
) = 1;
