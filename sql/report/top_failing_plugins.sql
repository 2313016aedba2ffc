-- The plugins that failed invocations most often from $start to $end (inclusive
-- UTC dates): each failed invocation counts once, under its first failed plugin
-- (NULL plugin: none ran, e.g. undeliverable). At most $limit rows.
SELECT
    document_name,
    failed_plugin_name AS plugin_name,
    failed_plugin_response_code AS response_code,
    count(*) AS failures,
    count(DISTINCT (account_id, region, instance_id)) AS instances_affected,
    max(requested_date_time) AS last_failure_date_time
FROM failed_invocations
WHERE CAST(timezone('UTC', requested_date_time) AS DATE)
    BETWEEN CAST($start AS DATE) AND CAST($end AS DATE)
GROUP BY document_name, failed_plugin_name, failed_plugin_response_code
ORDER BY failures DESC, last_failure_date_time DESC, document_name, plugin_name, response_code
LIMIT $limit;
