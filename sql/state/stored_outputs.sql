-- The plugins whose full output the lake holds (--full-output), with the status their
-- invocation had when it was read: a run reads one again only when that status changed.
-- Only each region's last 31 days of them: SSM keeps 30, older ones are never read again.
WITH newest AS (
    SELECT account_id, region, max(requested_date_time) AS newest
    FROM ${plugin_outputs}
    GROUP BY account_id, region
)
SELECT o.account_id, o.region, o.command_id, o.instance_id, o.plugin_index, o.invocation_status
FROM ${plugin_outputs} AS o
JOIN newest AS n USING (account_id, region)
WHERE o.requested_date_time >= n.newest - INTERVAL 31 DAY
