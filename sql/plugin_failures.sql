-- Failed plugins (see plugin_failed.sql: ran and ended in failure; pending, running,
-- cancelled and never-delivered plugins are not failures) counted by document,
-- plugin name and response code: how many plugin runs failed and when the
-- latest of those invocations was requested. Plugin rows carry their
-- invocation's document and time, so this needs no join.
--
-- No distinct counts, which would double the cost of this scan over every
-- plugin row (the view must answer in under a second at 15M rows).
-- Invocations affected would equal `failures` anyway: SSM requires a
-- document's step names to be unique, so an invocation has at most one plugin
-- of a name. Instances affected, for a period, are in the report's "top
-- failing plugins" (sql/report/top_failing_plugins.sql) and one GROUP BY away.
CREATE OR REPLACE VIEW plugin_failures AS
SELECT
    document_name,
    name AS plugin_name,
    response_code,
    count(*) AS failures,
    max(requested_date_time) AS last_failed_date_time
FROM command_plugins
WHERE plugin_failed(status, status_details)
GROUP BY document_name, name, response_code;
