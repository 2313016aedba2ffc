-- The managed instances of each account and region as its latest successful
-- inventory snapshot (DescribeInstanceInformation) saw them: the compliance
-- denominator. Instances gone from the inventory drop out of this view.
CREATE OR REPLACE VIEW managed_instances AS
-- NOT MATERIALIZED: read twice below, DuckDB would otherwise buffer every column of
-- every snapshot (a year of nightly snapshots is millions of rows) before either.
WITH snapshots AS NOT MATERIALIZED (
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
),
-- The newest snapshot by a hash aggregate and a semi join rather than ranking
-- every stored row: the windows below only see the newest snapshot's rows.
latest AS (
    SELECT account_id, region, max(ingested_at) AS ingested_at
    FROM snapshots
    GROUP BY account_id, region
)
SELECT *
FROM snapshots
SEMI JOIN latest USING (account_id, region, ingested_at)
-- Two runs stamped alike (not seen in practice): the later run_id's snapshot, each
-- instance once.
QUALIFY dense_rank() OVER (PARTITION BY account_id, region ORDER BY run_id DESC) = 1
    AND row_number() OVER (PARTITION BY account_id, region, instance_id ORDER BY run_id DESC) = 1;
