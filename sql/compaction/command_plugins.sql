-- Compaction: the plugin rows of the invocation versions that survived
-- (`survivors`: the partition's new invocations file), each once.
SELECT p.*
FROM read_parquet(${files}, hive_partitioning = false, union_by_name = true) AS p
SEMI JOIN read_parquet(${survivors}) AS s USING (command_id, instance_id, run_id, ingested_at)
QUALIFY row_number() OVER (
    PARTITION BY command_id, instance_id, plugin_index, run_id, ingested_at
) = 1
ORDER BY requested_date DESC, command_id, instance_id, plugin_index
