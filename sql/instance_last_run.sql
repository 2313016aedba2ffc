-- Per account, region, instance and document: the latest run and its status, the
-- latest success (NULL if never), and consecutive_failures: how many of the most
-- recent runs in a row ended in failure (Failed or TimedOut). Open, expired-while-open
-- and cancelled runs are skipped (neither a success nor a failure); a success, or a
-- status AWS adds later, ends the streak.
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
        invocation_outcome(status, expired_while_open_at) AS outcome
    FROM invocations
),
ranked AS (
    SELECT
        *,
        row_number() OVER newest_first AS recency,
        sum((outcome IN ('succeeded', 'other'))::INTEGER) OVER (
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
    max(outcome) FILTER (WHERE recency = 1) AS last_outcome,
    max(requested_date_time) FILTER (WHERE outcome = 'succeeded') AS last_success_date_time,
    count(*) FILTER (
        WHERE outcome IN ('failed', 'timed_out') AND streak_breakers_since = 0
    ) AS consecutive_failures
FROM ranked
GROUP BY account_id, region, instance_id, document_name;
