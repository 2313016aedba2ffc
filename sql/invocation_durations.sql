-- Run time per document: exact median, 95th percentile and maximum seconds,
-- where an invocation's run time is its plugins' last finish minus their first
-- start. Invocations lacking either time are left out.
CREATE OR REPLACE VIEW invocation_durations AS
WITH run_times AS (
    SELECT
        i.document_name,
        (epoch_ms(max(p.response_finish_date_time))
            - epoch_ms(min(p.response_start_date_time))) / 1000.0 AS seconds
    FROM invocations AS i
    JOIN command_plugins AS p
        USING (account_id, region, command_id, instance_id)
    GROUP BY i.account_id, i.region, i.command_id, i.instance_id, i.document_name
)
SELECT
    document_name,
    count(*) AS invocations,
    quantile_cont(seconds, 0.5)::DOUBLE AS p50_seconds,
    quantile_cont(seconds, 0.95)::DOUBLE AS p95_seconds,
    max(seconds)::DOUBLE AS max_seconds
FROM run_times
WHERE seconds IS NOT NULL
GROUP BY document_name;
