-- Failed plugins (status not 'Success', NULL included) counted by document,
-- plugin name and response code: how many plugin runs failed, in how many
-- invocations, and when the latest of those invocations was requested.
CREATE OR REPLACE VIEW plugin_failures AS
SELECT
    i.document_name,
    p.name AS plugin_name,
    p.response_code,
    count(*) AS failures,
    count(DISTINCT (p.account_id, p.region, p.command_id, p.instance_id)) AS invocations_affected,
    max(i.requested_date_time) AS last_failed_date_time
FROM command_plugins AS p
JOIN invocations AS i
    USING (account_id, region, command_id, instance_id)
WHERE p.status IS DISTINCT FROM 'Success'
GROUP BY i.document_name, p.name, p.response_code;
