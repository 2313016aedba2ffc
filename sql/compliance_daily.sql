-- Per UTC day, account, region and document: how many invocations ended in each
-- outcome (see invocation_outcome.sql), and success_rate = succeeded / finished,
-- where finished leaves out the open and the expired-while-open (NULL when nothing
-- finished). Undeliverable invocations (Failed, StatusDetails 'Undeliverable') count
-- in both failed and undeliverable.
CREATE OR REPLACE VIEW compliance_daily AS
WITH outcomes AS (
    SELECT
        requested_date,
        account_id,
        region,
        document_name,
        status_details,
        invocation_outcome(status, expired_while_open_at) AS outcome
    FROM invocations
),
counted AS (
    SELECT
        requested_date,
        account_id,
        region,
        document_name,
        count(*) AS invocations,
        count(*) FILTER (WHERE outcome = 'succeeded') AS succeeded,
        count(*) FILTER (WHERE outcome = 'failed') AS failed,
        count(*) FILTER (WHERE outcome = 'timed_out') AS timed_out,
        count(*) FILTER (WHERE outcome = 'cancelled') AS cancelled,
        count(*) FILTER (
            WHERE outcome = 'failed' AND status_details = 'Undeliverable'
        ) AS undeliverable,
        count(*) FILTER (WHERE outcome = 'open') AS open,
        count(*) FILTER (WHERE outcome = 'expired') AS expired,
        count(*) FILTER (WHERE outcome = 'other') AS other
    FROM outcomes
    GROUP BY requested_date, account_id, region, document_name
)
SELECT
    *,
    invocations - open - expired AS finished,
    (succeeded / nullif(invocations - open - expired, 0))::DOUBLE AS success_rate
FROM counted;
