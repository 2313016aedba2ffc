-- The run ledger: one row per run x account x region (and per purge), with the
-- window it read, what it committed, its outcome and the watermark after it; with
-- --full-output, the plugins whose full output it stored and the outputs a source could
-- not give, with the reasons.
CREATE OR REPLACE VIEW ingest_runs AS
SELECT
    run_id,
    account_id,
    region,
    started_at,
    finished_at,
    window_start,
    window_end,
    pages,
    invocations,
    plugins,
    quarantined,
    status,
    error,
    watermark,
    purged_months,
    commands,
    managed_instances,
    open_followed,
    expired_while_open,
    outputs_fetched,
    outputs_unavailable,
    outputs_unavailable_reasons
FROM ${ingest_runs};
