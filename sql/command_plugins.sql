-- One row per plugin of each invocation's current state: the command_plugins table
-- at one committed Delta version (a re-fetched invocation's plugins replace its old ones).
CREATE OR REPLACE VIEW command_plugins AS
SELECT
    account_id,
    region,
    command_id,
    instance_id,
    requested_date,
    requested_date_time,
    document_name,
    plugin_index,
    name,
    status,
    status_details,
    response_code,
    response_start_date_time,
    response_finish_date_time,
    output,
    standard_output_url,
    standard_error_url,
    output_s3_region,
    output_s3_bucket_name,
    output_s3_key_prefix,
    run_id,
    ingested_at,
    requested_month
FROM ${command_plugins};
