-- Failed plugins (status not 'Success', NULL included) counted by document,
-- plugin name and response code: how many plugin runs failed, in how many
-- invocations, and when the latest of those invocations was requested. Plugin
-- rows carry their invocation's document and time, so this needs no join.
CREATE OR REPLACE VIEW plugin_failures AS
SELECT
    document_name,
    name AS plugin_name,
    response_code,
    count(*) AS failures,
    count(DISTINCT (account_id, region, command_id, instance_id)) AS invocations_affected,
    max(requested_date_time) AS last_failed_date_time
FROM command_plugins
WHERE status IS DISTINCT FROM 'Success'
GROUP BY document_name, name, response_code;
