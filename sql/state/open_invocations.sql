-- Invocations the lake holds in an open state (not yet final) that the API has not
-- been found to have lost, grouped by command: a run reads each command again
-- until its invocations end (or leave the API's retention still open).
SELECT
    account_id,
    region,
    command_id,
    epoch_ms(min(requested_date_time)) AS requested_ms,
    min(requested_month) AS requested_month,
    list(instance_id ORDER BY instance_id) AS instance_ids
FROM ${invocations}
WHERE status IN ('Pending', 'InProgress', 'Delayed', 'Cancelling')
    AND expired_while_open_at IS NULL
GROUP BY account_id, region, command_id
ORDER BY account_id, region, requested_ms
