-- The full stdout and stderr of the plugins runs with --full-output selected, one row
-- per plugin (keyed like command_plugins), in the state its invocation was read in:
-- each stream's text (redacted, at most --output-cap bytes), where it came from
-- (s3, cloudwatch, get_command_invocation), its size, the source's own cut, the cap,
-- and the sources that could not give it.
CREATE OR REPLACE VIEW plugin_outputs AS
SELECT
    account_id,
    region,
    command_id,
    instance_id,
    requested_date,
    requested_date_time,
    document_name,
    plugin_index,
    name,
    invocation_status,
    status,
    stdout,
    stdout_source,
    stdout_bytes,
    stdout_truncated,
    stdout_truncated_at,
    stdout_capped_at,
    stdout_unavailable,
    stderr,
    stderr_source,
    stderr_bytes,
    stderr_truncated,
    stderr_truncated_at,
    stderr_capped_at,
    stderr_unavailable,
    run_id,
    ingested_at,
    requested_month
FROM ${plugin_outputs};
