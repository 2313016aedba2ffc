-- Per known instance: its latest AWS-RunPatchBaseline run as of `as_of`, that
-- run's age in days, its latest successful run, and whether one succeeded
-- within the `days` days before `as_of`. Runs requested after `as_of` are
-- ignored; never-patched instances are not compliant. Windows are measured in
-- UTC, whatever the session's TimeZone.
CREATE OR REPLACE MACRO patch_compliance_within(days, as_of := now()) AS TABLE
WITH instances AS (
    SELECT DISTINCT account_id, region, instance_id FROM invocations
    -- more sources of instances join here, one UNION line each
),
latest_patch AS (
    SELECT
        account_id,
        region,
        instance_id,
        requested_date_time AS latest_patch_requested_date_time,
        status AS latest_patch_status,
        max(requested_date_time) FILTER (WHERE status = 'Success') OVER instance
            AS last_success_date_time
    FROM invocations
    WHERE document_name = 'AWS-RunPatchBaseline'
        AND requested_date_time <= CAST(as_of AS TIMESTAMPTZ)
    WINDOW instance AS (PARTITION BY account_id, region, instance_id)
    QUALIFY row_number() OVER (
        instance ORDER BY requested_date_time DESC, command_id DESC
    ) = 1
)
SELECT
    account_id,
    region,
    instance_id,
    p.latest_patch_requested_date_time,
    p.latest_patch_status,
    ((epoch_ms(CAST(as_of AS TIMESTAMPTZ)) - epoch_ms(p.latest_patch_requested_date_time))
        / 86400000.0)::DOUBLE AS latest_patch_age_days,
    p.last_success_date_time,
    coalesce(
        timezone('UTC', p.last_success_date_time)
            >= timezone('UTC', CAST(as_of AS TIMESTAMPTZ)) - INTERVAL (days) DAY,
        false
    ) AS compliant
FROM instances
LEFT JOIN latest_patch AS p USING (account_id, region, instance_id);
