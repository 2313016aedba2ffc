-- Per account and region: the latest ingest run (purges left out), its status
-- and error, the latest successful run, and the newest invocation in the lake,
-- so a stale or failing region stands out. A region appears if either the
-- ledger or the data knows it.
CREATE OR REPLACE VIEW data_freshness AS
-- The regions the data knows come from `newest`, so invocations are scanned once.
WITH newest AS (
    SELECT account_id, region, max(requested_date_time) AS newest_invocation_at
    FROM invocations
    GROUP BY account_id, region
),
runs AS (
    SELECT * FROM ingest_runs WHERE purged_months IS NULL
),
regions AS (
    SELECT account_id, region FROM runs
    UNION
    SELECT account_id, region FROM newest
),
last_run AS (
    SELECT account_id, region, run_id, finished_at, status, error
    FROM runs
    QUALIFY row_number() OVER (
        PARTITION BY account_id, region ORDER BY finished_at DESC, run_id DESC
    ) = 1
),
last_success AS (
    SELECT account_id, region, max(finished_at) AS last_success_at
    FROM runs
    WHERE status = 'succeeded'
    GROUP BY account_id, region
)
SELECT
    account_id,
    region,
    r.run_id AS last_run_id,
    r.finished_at AS last_run_finished_at,
    r.status AS last_run_status,
    r.error AS last_run_error,
    s.last_success_at,
    n.newest_invocation_at
FROM regions
LEFT JOIN last_run AS r USING (account_id, region)
LEFT JOIN last_success AS s USING (account_id, region)
LEFT JOIN newest AS n USING (account_id, region);
