-- Every invocation that ended in failure (Failed, TimedOut; undeliverable ones
-- included) with its first failed plugin (see plugin_failed.sql; lowest
-- plugin_index) and the first 200 characters of that plugin's output. Invocations
-- without a failed plugin (undeliverable, delivery timed out) have NULL plugin columns.
CREATE OR REPLACE VIEW failed_invocations AS
WITH first_failed_plugin AS (
    -- An aggregate rather than a window: one hash pass instead of sorting.
    SELECT
        account_id,
        region,
        command_id,
        instance_id,
        arg_min_null(
            {'name': name, 'response_code': response_code, 'output': left(output, 200)},
            plugin_index
        ) AS plugin
    FROM command_plugins
    WHERE plugin_failed(status, status_details)
    GROUP BY account_id, region, command_id, instance_id
)
SELECT
    i.account_id,
    i.region,
    i.command_id,
    i.instance_id,
    i.instance_name,
    i.document_name,
    i.requested_date_time,
    i.status,
    i.status_details,
    p.plugin.name AS failed_plugin_name,
    p.plugin.response_code AS failed_plugin_response_code,
    p.plugin.output AS failed_plugin_output
FROM invocations AS i
LEFT JOIN first_failed_plugin AS p
    USING (account_id, region, command_id, instance_id)
WHERE invocation_outcome(i.status, i.expired_while_open_at) IN ('failed', 'timed_out');
