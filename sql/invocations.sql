-- One row per (account_id, region, command_id, instance_id) in the state the API
-- reported last: the invocations table at one committed Delta version, which holds
-- each key once (`expired_while_open_at`: the API no longer returns it, still open).
CREATE OR REPLACE VIEW invocations AS
SELECT
    account_id,
    region,
    command_id,
    instance_id,
    instance_name,
    comment,
    document_name,
    document_version,
    requested_date_time,
    requested_date,
    status,
    status_details,
    trace_output,
    standard_output_url,
    standard_error_url,
    service_role,
    notification_arn,
    notification_events,
    notification_type,
    cloud_watch_log_group_name,
    cloud_watch_output_enabled,
    plugins_started_date_time,
    plugins_finished_date_time,
    run_id,
    ingested_at,
    expired_while_open_at,
    requested_month
FROM ${invocations};
