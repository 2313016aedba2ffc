-- `ssm-etl status`: the data_freshness view, in a stable order.
SELECT * FROM data_freshness ORDER BY account_id, region;
