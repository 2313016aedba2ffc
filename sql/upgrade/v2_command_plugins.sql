-- Upgrade of a format-1 month partition: the plugin rows of the surviving
-- invocation versions (`survivors`: the partition's upgraded invocations file),
-- each once, with the invocation's time and document that format 2 copies.
SELECT p.*, s.requested_date_time, s.document_name
FROM read_parquet(${files}, hive_partitioning = false, union_by_name = true) AS p
JOIN read_parquet(${survivors}) AS s USING (command_id, instance_id, run_id, ingested_at)
QUALIFY row_number() OVER (
    PARTITION BY command_id, instance_id, plugin_index, run_id, ingested_at
) = 1
ORDER BY requested_date DESC, command_id, instance_id, plugin_index
