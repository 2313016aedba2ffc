-- Per known instance (from invocations or the latest inventory snapshot): its name
-- (the latest non-empty InstanceName, else the inventory's), its
-- latest AWS-RunPatchBaseline Install run as of `as_of`, that run's status,
-- details and age in days, its latest successful run, and `compliant`: a
-- successful run within the `days` days before `as_of`. Runs whose command
-- says Operation=Scan do not count as patching (when the command is unknown,
-- the run counts). Never-patched instances are not compliant. Instances gone
-- from their region's latest inventory snapshot no longer count: `compliant`
-- is NULL for them (`in_inventory` = false). Windows are measured in UTC.
CREATE OR REPLACE MACRO patch_compliance_within(days, as_of := now()) AS TABLE
WITH instances AS (
    -- Every known instance, its name, whether the latest inventory lists it, and
    -- whether its region has an inventory at all.
    SELECT
        account_id,
        region,
        instance_id,
        coalesce(i.invoked_name, m.listed_name) AS instance_name,
        m.instance_id IS NOT NULL AS listed,
        bool_or(m.instance_id IS NOT NULL) OVER (PARTITION BY account_id, region) AS inventoried
    FROM (
        SELECT
            account_id,
            region,
            instance_id,
            arg_max(nullif(instance_name, ''), requested_date_time) AS invoked_name
        FROM invocations
        GROUP BY account_id, region, instance_id
    ) AS i
    FULL OUTER JOIN (
        SELECT
            account_id,
            region,
            instance_id,
            coalesce(nullif(name, ''), nullif(computer_name, '')) AS listed_name
        FROM managed_instances
    ) AS m USING (account_id, region, instance_id)
),
patch_runs AS (
    SELECT
        i.account_id,
        i.region,
        i.instance_id,
        i.command_id,
        i.requested_date_time,
        i.status,
        i.status_details,
        c.parameters['Operation'][1] AS operation
    FROM invocations AS i
    LEFT JOIN commands AS c USING (account_id, region, command_id)
    WHERE i.document_name = 'AWS-RunPatchBaseline'
        AND i.requested_date_time <= CAST(as_of AS TIMESTAMPTZ)
        AND coalesce(c.parameters['Operation'][1], 'Install') = 'Install'
),
latest_patch AS (
    -- Aggregates rather than a window: one hash pass instead of sorting every run.
    SELECT
        account_id,
        region,
        instance_id,
        max(requested_date_time) AS latest_patch_requested_date_time,
        arg_max_null(status, (requested_date_time, command_id)) AS latest_patch_status,
        arg_max_null(status_details, (requested_date_time, command_id))
            AS latest_patch_status_details,
        max(requested_date_time) FILTER (WHERE status = 'Success') AS last_success_date_time
    FROM patch_runs
    GROUP BY account_id, region, instance_id
)
SELECT
    account_id,
    region,
    instance_id,
    instance_name,
    p.latest_patch_requested_date_time,
    p.latest_patch_status,
    p.latest_patch_status_details,
    ((epoch_ms(CAST(as_of AS TIMESTAMPTZ)) - epoch_ms(p.latest_patch_requested_date_time))
        / 86400000.0)::DOUBLE AS latest_patch_age_days,
    p.last_success_date_time,
    CASE WHEN inventoried THEN listed END AS in_inventory,
    CASE
        WHEN inventoried AND NOT listed THEN NULL
        ELSE coalesce(
            timezone('UTC', p.last_success_date_time)
                >= timezone('UTC', CAST(as_of AS TIMESTAMPTZ)) - INTERVAL (days) DAY,
            false
        )
    END AS compliant
FROM instances
LEFT JOIN latest_patch AS p USING (account_id, region, instance_id);
