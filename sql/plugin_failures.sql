-- Failed plugins (status not 'Success', NULL included) counted by document,
-- plugin name and response code: how many plugin runs failed, on how many
-- instances, and when the latest of those invocations was requested. Plugin
-- rows carry their invocation's document and time, so this needs no join.
--
-- There is no count of invocations: SSM requires a document's step names to
-- be unique, so an invocation has at most one plugin of a name and that count
-- would equal `failures`, at the price of a distinct over every failed row.
CREATE OR REPLACE VIEW plugin_failures AS
SELECT
    document_name,
    name AS plugin_name,
    response_code,
    count(*) AS failures,
    count(DISTINCT (account_id, region, instance_id)) AS instances_affected,
    max(requested_date_time) AS last_failed_date_time
FROM command_plugins
WHERE status IS DISTINCT FROM 'Success'
GROUP BY document_name, name, response_code;
