-- Every invocation that ended in failure (Failed, TimedOut; undeliverable ones
-- included) with its first failed plugin (see plugin_failed.sql; lowest
-- plugin_index) and the first 200 characters of that plugin's output. Invocations
-- without a failed plugin (undeliverable, delivery timed out) have NULL plugin columns.
-- With --full-output, the last 20 lines of that plugin's full stdout and stderr
-- (plugin_outputs; join on the key and failed_plugin_index for the whole text).
CREATE OR REPLACE VIEW failed_invocations AS
WITH stored_outputs AS (
    -- One row per invocation, joined on plain keys: a join on a column of
    -- first_failed_plugin would make every query of this view compute that aggregate
    -- over all of command_plugins, even one that reads no plugin column.
    SELECT
        account_id,
        region,
        requested_month,
        command_id,
        instance_id,
        list({'plugin_index': plugin_index, 'stdout': stdout, 'stderr': stderr}) AS streams
    FROM plugin_outputs
    GROUP BY account_id, region, requested_month, command_id, instance_id
),
first_failed_plugin AS (
    -- An aggregate rather than a window: one hash pass instead of sorting.
    SELECT
        account_id,
        region,
        command_id,
        instance_id,
        arg_min_null(
            {
                'name': name,
                'response_code': response_code,
                'output': left(output, 200),
                'plugin_index': plugin_index
            },
            plugin_index
        ) AS plugin
    FROM command_plugins
    WHERE plugin_failed(status, status_details)
    GROUP BY account_id, region, command_id, instance_id
)
SELECT
    * EXCLUDE (stored),
    array_to_string(
        list_slice(string_split(rtrim(stored.stdout, chr(10)), chr(10)), -20, -1), chr(10)
    ) AS full_stdout_tail,
    array_to_string(
        list_slice(string_split(rtrim(stored.stderr, chr(10)), chr(10)), -20, -1), chr(10)
    ) AS full_stderr_tail
FROM (
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
        p.plugin.output AS failed_plugin_output,
        p.plugin.plugin_index AS failed_plugin_index,
        list_filter(o.streams, lambda s: s.plugin_index = p.plugin.plugin_index)[1] AS stored
    FROM invocations AS i
    LEFT JOIN first_failed_plugin AS p
        USING (account_id, region, command_id, instance_id)
    LEFT JOIN stored_outputs AS o
        ON o.account_id = i.account_id
        AND o.region = i.region
        AND o.requested_month = i.requested_month
        AND o.command_id = i.command_id
        AND o.instance_id = i.instance_id
    WHERE invocation_outcome(i.status, i.expired_while_open_at) IN ('failed', 'timed_out')
);
