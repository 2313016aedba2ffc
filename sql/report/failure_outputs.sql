-- The full output (--full-output) of the top failures from $start to $end (inclusive
-- UTC dates): for each of the $limit instances with the most failed invocations,
-- its latest failure whose first failed plugin's full output is stored, with the
-- last lines of that plugin's stdout and stderr (failed_invocations).
WITH ranked AS (
    SELECT
        *,
        count(*) OVER (PARTITION BY account_id, region, instance_id) AS failures
    FROM failed_invocations
    WHERE CAST(timezone('UTC', requested_date_time) AS DATE)
        BETWEEN CAST($start AS DATE) AND CAST($end AS DATE)
)
SELECT
    account_id,
    region,
    instance_id,
    instance_name,
    failures,
    arg_max(command_id, requested_date_time) AS command_id,
    arg_max(document_name, requested_date_time) AS document_name,
    max(requested_date_time) AS requested_date_time,
    arg_max(status, requested_date_time) AS status,
    arg_max(failed_plugin_name, requested_date_time) AS plugin_name,
    arg_max(full_stdout_tail, requested_date_time) AS stdout_tail,
    arg_max(full_stderr_tail, requested_date_time) AS stderr_tail
FROM ranked
WHERE full_stdout_tail IS NOT NULL OR full_stderr_tail IS NOT NULL
GROUP BY account_id, region, instance_id, instance_name, failures
ORDER BY failures DESC, requested_date_time DESC, account_id, region, instance_id
LIMIT $limit;
