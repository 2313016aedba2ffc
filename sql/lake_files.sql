-- Every live data file of the two big tables, and whether its partition is
-- clean. A file listed in a `_trash/` manifest is retired (replaced by
-- compaction, or purged): it stays on storage for the grace period but is never
-- read. A partition (account, region, month) is clean when all its live files,
-- invocations and plugins alike, are one compaction's output (named
-- `part-<run>-c<hex>.parquet`, one run): they hold each row once, so the views
-- read them as they are. A partition a killed run left half-compacted is
-- deduplicated row by row in the views until the next run compacts it.
CREATE OR REPLACE VIEW lake_files AS
WITH listed AS (
    SELECT file, substr(file, length(${lake_url}) + 2) AS relative
    FROM (
        SELECT file FROM glob(${invocations_files})
        UNION ALL
        SELECT file FROM glob(${command_plugins_files})
    )
),
retired AS (
    SELECT DISTINCT unnest(files) AS relative
    FROM read_json(${trash_files}, columns = {retired_at: 'DOUBLE', files: 'VARCHAR[]'})
),
live AS (
    SELECT
        regexp_extract(relative, '^([^/]+)/', 1) AS table_name,
        regexp_extract(relative, '^[^/]+/(.*)/[^/]+$$', 1) AS partition,
        file,
        regexp_extract(relative, '/(part-.*)-c[0-9a-f]{8}\.parquet$$', 1) AS compaction
    FROM listed
    WHERE parse_filename(file) <> '_empty.parquet'
        AND relative NOT IN (SELECT relative FROM retired)
)
SELECT
    table_name,
    partition,
    file,
    count(*) FILTER (WHERE compaction = '') OVER whole = 0
        AND count(DISTINCT compaction) OVER whole = 1 AS clean
FROM live
WINDOW whole AS (PARTITION BY partition);
