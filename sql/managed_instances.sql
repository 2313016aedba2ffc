-- The managed instances of each account and region as its latest successful
-- inventory snapshot (DescribeInstanceInformation) saw them: the compliance
-- denominator. Instances gone from the inventory drop out of this view.
CREATE OR REPLACE VIEW managed_instances AS
WITH snapshots AS (
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
    FROM read_parquet(
        ${managed_instances_files},
        hive_partitioning = true,
        union_by_name = true,
        hive_types = {'account_id': VARCHAR, 'region': VARCHAR}
    )
)
SELECT * EXCLUDE (snapshot_rank)
FROM (
    SELECT
        *,
        dense_rank() OVER (
            PARTITION BY account_id, region ORDER BY ingested_at DESC, run_id DESC
        ) AS snapshot_rank
    FROM snapshots
)
WHERE snapshot_rank = 1
QUALIFY row_number() OVER (PARTITION BY account_id, region, instance_id) = 1;
