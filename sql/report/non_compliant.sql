-- Instances out of patch compliance as of $as_of (no successful
-- AWS-RunPatchBaseline Install in the $days days before it), with why: the
-- latest patch run's status and details, and the age of the last success
-- (NULL: never). Instances gone from the inventory (compliant NULL) are left out.
SELECT
    account_id,
    region,
    instance_id,
    instance_name,
    latest_patch_requested_date_time,
    latest_patch_status,
    latest_patch_status_details,
    last_success_date_time,
    ((epoch_ms(CAST($as_of AS TIMESTAMPTZ)) - epoch_ms(last_success_date_time))
        / 86400000.0)::DOUBLE AS last_success_age_days
FROM patch_compliance_within($days, as_of := CAST($as_of AS TIMESTAMPTZ))
WHERE NOT compliant
ORDER BY account_id, region, instance_id;
