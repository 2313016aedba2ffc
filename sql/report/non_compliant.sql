-- Instances out of patch compliance as of $as_of (no successful
-- AWS-RunPatchBaseline in the $days days before it), with why: the latest patch
-- run's status and details, and the age of the last success (NULL: never).
WITH patch_details AS (
    SELECT account_id, region, instance_id, requested_date_time, status_details
    FROM invocations
    WHERE document_name = 'AWS-RunPatchBaseline'
    -- the run patch_compliance_within calls latest among same-time runs
    QUALIFY row_number() OVER (
        PARTITION BY account_id, region, instance_id, requested_date_time
        ORDER BY command_id DESC
    ) = 1
)
SELECT
    c.account_id,
    c.region,
    c.instance_id,
    c.latest_patch_requested_date_time,
    c.latest_patch_status,
    d.status_details AS latest_patch_status_details,
    c.last_success_date_time,
    ((epoch_ms(CAST($as_of AS TIMESTAMPTZ)) - epoch_ms(c.last_success_date_time))
        / 86400000.0)::DOUBLE AS last_success_age_days
FROM patch_compliance_within($days, as_of := CAST($as_of AS TIMESTAMPTZ)) AS c
LEFT JOIN patch_details AS d
    ON d.account_id = c.account_id
    AND d.region = c.region
    AND d.instance_id = c.instance_id
    AND d.requested_date_time = c.latest_patch_requested_date_time
WHERE NOT c.compliant
ORDER BY c.account_id, c.region, c.instance_id;
