-- Invocations and failures (Failed, TimedOut: see invocation_outcome.sql) per account and region
-- from $start to $end (inclusive UTC dates).
SELECT
    account_id,
    region,
    sum(invocations)::BIGINT AS invocations,
    sum(succeeded)::BIGINT AS succeeded,
    sum(failed + timed_out)::BIGINT AS failures
FROM compliance_between($start, $end)
GROUP BY account_id, region
ORDER BY account_id, region;
