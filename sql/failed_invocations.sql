-- Every invocation that ended in failure (Failed, TimedOut, Cancelled) with its
-- first failed plugin (status not 'Success', lowest plugin_index) and the first
-- 200 characters of that plugin's output. Invocations without plugins (such as
-- undeliverable ones) appear with NULL plugin columns.
CREATE OR REPLACE VIEW failed_invocations AS
WITH first_failed_plugin AS (
    SELECT account_id, region, command_id, instance_id, name, response_code, output
    FROM command_plugins
    WHERE status IS DISTINCT FROM 'Success'
    QUALIFY row_number() OVER (
        PARTITION BY account_id, region, command_id, instance_id
        ORDER BY plugin_index
    ) = 1
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
    p.name AS failed_plugin_name,
    p.response_code AS failed_plugin_response_code,
    left(p.output, 200) AS failed_plugin_output
FROM invocations AS i
LEFT JOIN first_failed_plugin AS p
    USING (account_id, region, command_id, instance_id)
WHERE i.status IN ('Failed', 'TimedOut', 'Cancelled');
