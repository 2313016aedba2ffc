-- Run time per document: exact median, 95th percentile and maximum seconds
-- (rounded to the millisecond, the API's precision),
-- where an invocation's run time is its plugins' last finish minus their first
-- start (precomputed on each invocation row when it is stored, so no join with
-- command_plugins). Invocations lacking either time are left out.
CREATE OR REPLACE VIEW invocation_durations AS
WITH run_times AS (
    SELECT
        document_name,
        (epoch_ms(plugins_finished_date_time) - epoch_ms(plugins_started_date_time)) / 1000.0
            AS seconds
    FROM invocations
)
SELECT
    document_name,
    count(*) AS invocations,
    round(quantile_cont(seconds, 0.5), 3)::DOUBLE AS p50_seconds,
    round(quantile_cont(seconds, 0.95), 3)::DOUBLE AS p95_seconds,
    round(max(seconds), 3)::DOUBLE AS max_seconds
FROM run_times
WHERE seconds IS NOT NULL
GROUP BY document_name;
