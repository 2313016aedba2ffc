-- The instances with the most failed invocations (Failed, TimedOut)
-- requested from $start to $end (inclusive UTC dates), at most $limit.
SELECT
    account_id,
    region,
    instance_id,
    max(instance_name) AS instance_name,
    count(*) AS failures,
    max(requested_date_time) AS last_failure_date_time,
    arg_max(document_name, requested_date_time) AS last_failed_document,
    arg_max(status, requested_date_time) AS last_failed_status
FROM failed_invocations
WHERE CAST(timezone('UTC', requested_date_time) AS DATE)
    BETWEEN CAST($start AS DATE) AND CAST($end AS DATE)
GROUP BY account_id, region, instance_id
ORDER BY failures DESC, last_failure_date_time DESC, account_id, region, instance_id
LIMIT $limit;
