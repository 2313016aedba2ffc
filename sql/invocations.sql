-- One row per (account_id, region, command_id, instance_id) in its most recently
-- ingested state. Files of clean partitions (see lake_files.sql) hold each row
-- once and are read as they are; a partition a killed run left uncompacted is
-- deduplicated here, keeping each invocation's latest version.
CREATE OR REPLACE VIEW invocations AS
WITH stored AS NOT MATERIALIZED (
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
        requested_month,
        filename
    FROM read_parquet(
        ${invocations_files},
        hive_partitioning = true,
        -- Every file of a format version has the declared schema, so DuckDB need not
        -- reconcile footers (union_by_name): several times faster over many files.
        hive_types = {'account_id': VARCHAR, 'region': VARCHAR, 'requested_month': VARCHAR},
        filename = true
    )
)
SELECT * EXCLUDE (filename)
FROM stored
WHERE filename IN (SELECT file FROM lake_files WHERE table_name = 'invocations' AND clean)
UNION ALL
SELECT * EXCLUDE (filename)
FROM stored
WHERE filename IN (SELECT file FROM lake_files WHERE table_name = 'invocations' AND NOT clean)
QUALIFY row_number() OVER (
    PARTITION BY account_id, region, command_id, instance_id
    ORDER BY ingested_at DESC, run_id DESC
) = 1;
