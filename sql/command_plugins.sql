-- One row per plugin of each invocation's current state (see invocations.sql).
-- A clean partition's files (see lake_files.sql) hold exactly the plugins of
-- each invocation's latest version. Elsewhere plugin rows belong to the
-- invocation version they were ingested with, so a plugin list that changed
-- length never leaves stale rows behind.
CREATE OR REPLACE VIEW command_plugins AS
WITH stored AS NOT MATERIALIZED (
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
        requested_month,
        filename
    FROM read_parquet(
        ${command_plugins_files},
        hive_partitioning = true,
        -- Every file of a format version has the declared schema, so DuckDB need not
        -- reconcile footers (union_by_name): several times faster over many files.
        hive_types = {'account_id': VARCHAR, 'region': VARCHAR, 'requested_month': VARCHAR},
        filename = true
    )
)
SELECT * EXCLUDE (filename)
FROM stored
WHERE filename IN (SELECT file FROM lake_files WHERE table_name = 'command_plugins' AND clean)
UNION ALL
SELECT p.* EXCLUDE (filename)
FROM stored AS p
-- The invocation versions of the same (unclean) partitions, latest first.
SEMI JOIN (
    SELECT account_id, region, requested_month, command_id, instance_id, run_id, ingested_at
    FROM read_parquet(
        ${invocations_files},
        hive_partitioning = true,
        hive_types = {'account_id': VARCHAR, 'region': VARCHAR, 'requested_month': VARCHAR},
        filename = true
    )
    WHERE filename IN (SELECT file FROM lake_files WHERE table_name = 'invocations' AND NOT clean)
    QUALIFY row_number() OVER (
        PARTITION BY account_id, region, command_id, instance_id
        ORDER BY ingested_at DESC, run_id DESC
    ) = 1
) AS i
    USING (account_id, region, requested_month, command_id, instance_id, run_id, ingested_at)
WHERE p.filename IN (SELECT file FROM lake_files WHERE table_name = 'command_plugins' AND NOT clean)
-- The same plugin rows can sit in a compaction's output and in the files it replaces.
QUALIFY row_number() OVER (
    PARTITION BY p.account_id, p.region, p.command_id, p.instance_id, p.plugin_index
) = 1;
