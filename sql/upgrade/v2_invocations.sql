-- Upgrade of a format-1 month partition: the latest version of each invocation,
-- with the plugin time span that format 2 stores on every invocation row.
WITH latest AS (
    SELECT *
    FROM read_parquet(${files}, hive_partitioning = false, union_by_name = true)
    QUALIFY row_number() OVER (
        PARTITION BY command_id, instance_id
        ORDER BY ingested_at DESC, run_id DESC
    ) = 1
),
spans AS (
    SELECT
        command_id,
        instance_id,
        run_id,
        ingested_at,
        min(response_start_date_time) AS plugins_started_date_time,
        max(response_finish_date_time) AS plugins_finished_date_time
    FROM read_parquet(${plugin_files}, hive_partitioning = false, union_by_name = true)
    GROUP BY command_id, instance_id, run_id, ingested_at
)
SELECT latest.*, spans.plugins_started_date_time, spans.plugins_finished_date_time
FROM latest
LEFT JOIN spans USING (command_id, instance_id, run_id, ingested_at)
ORDER BY requested_date_time DESC, command_id, instance_id
