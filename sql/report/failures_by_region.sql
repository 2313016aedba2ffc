-- Invocations and failures (Failed, TimedOut, Cancelled) per account and region
-- from $start to $end (inclusive UTC dates).
SELECT
    account_id,
    region,
    sum(invocations)::BIGINT AS invocations,
    sum(succeeded)::BIGINT AS succeeded,
    sum(failed + timed_out + cancelled)::BIGINT AS failures
FROM compliance_between($start, $end)
GROUP BY account_id, region
ORDER BY account_id, region;
