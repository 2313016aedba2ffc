-- The managed instances of each account and region as its latest inventory snapshot
-- (DescribeInstanceInformation) saw them: the compliance denominator. Each run's
-- snapshot replaces its region's rows, so instances gone from the inventory drop out.
CREATE OR REPLACE VIEW managed_instances AS
SELECT
    account_id,
    region,
    instance_id,
    name,
    computer_name,
    ping_status,
    last_ping_date_time,
    agent_version,
    is_latest_version,
    platform_type,
    platform_name,
    platform_version,
    resource_type,
    ip_address,
    association_status,
    registration_date,
    source_id,
    source_type,
    run_id,
    ingested_at
FROM ${managed_instances};
