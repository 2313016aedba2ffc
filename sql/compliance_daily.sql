-- Per UTC day, account, region and document: how many invocations ended in each
-- status bucket, and success_rate = succeeded / finished (in-flight excluded).
-- Undeliverable invocations (Failed, StatusDetails 'Undeliverable') count in
-- both failed and undeliverable; NULL or unknown statuses count as other.
CREATE OR REPLACE VIEW compliance_daily AS
WITH bucketed AS (
    SELECT
        requested_date,
        account_id,
        region,
        document_name,
        status_details,
        CASE
            WHEN status = 'Success' THEN 'succeeded'
            WHEN status = 'Failed' THEN 'failed'
            WHEN status = 'TimedOut' THEN 'timed_out'
            WHEN status = 'Cancelled' THEN 'cancelled'
            WHEN status IN ('Pending', 'InProgress', 'Delayed', 'Cancelling') THEN 'in_flight'
            ELSE 'other'
        END AS bucket
    FROM invocations
),
counted AS (
    SELECT
        requested_date,
        account_id,
        region,
        document_name,
        count(*) AS invocations,
        count(*) FILTER (WHERE bucket = 'succeeded') AS succeeded,
        count(*) FILTER (WHERE bucket = 'failed') AS failed,
        count(*) FILTER (WHERE bucket = 'timed_out') AS timed_out,
        count(*) FILTER (WHERE bucket = 'cancelled') AS cancelled,
        count(*) FILTER (
            WHERE bucket = 'failed' AND status_details = 'Undeliverable'
        ) AS undeliverable,
        count(*) FILTER (WHERE bucket = 'in_flight') AS in_flight,
        count(*) FILTER (WHERE bucket = 'other') AS other
    FROM bucketed
    GROUP BY requested_date, account_id, region, document_name
)
SELECT
    *,
    (succeeded / nullif(invocations - in_flight, 0))::DOUBLE AS success_rate
FROM counted;
