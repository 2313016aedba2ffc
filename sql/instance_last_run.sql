-- Per account, region, instance and document: the latest run and its status,
-- the latest success (NULL if never), and consecutive_failures: how many of the
-- most recent finished runs in a row ended in failure (Failed, TimedOut,
-- Cancelled). In-flight runs are skipped; any other status (unknown or NULL)
-- counts as not a failure and ends the streak.
CREATE OR REPLACE VIEW instance_last_run AS
WITH runs AS (
    SELECT
        account_id,
        region,
        instance_id,
        document_name,
        command_id,
        requested_date_time,
        status,
        coalesce(status IN ('Failed', 'TimedOut', 'Cancelled'), false) AS ended_in_failure,
        coalesce(status IN ('Pending', 'InProgress', 'Delayed', 'Cancelling'), false) AS in_flight
    FROM invocations
),
ranked AS (
    SELECT
        *,
        row_number() OVER newest_first AS recency,
        sum((NOT in_flight AND NOT ended_in_failure)::INTEGER) OVER (
            newest_first ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS streak_breakers_since
    FROM runs
    WINDOW newest_first AS (
        PARTITION BY account_id, region, instance_id, document_name
        ORDER BY requested_date_time DESC, command_id DESC
    )
)
SELECT
    account_id,
    region,
    instance_id,
    document_name,
    max(requested_date_time) AS last_requested_date_time,
    max(status) FILTER (WHERE recency = 1) AS last_status,
    max(requested_date_time) FILTER (WHERE status = 'Success') AS last_success_date_time,
    count(*) FILTER (WHERE ended_in_failure AND streak_breakers_since = 0) AS consecutive_failures
FROM ranked
GROUP BY account_id, region, instance_id, document_name;
