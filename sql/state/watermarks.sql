-- Each account and region's watermark: the newest RequestedDateTime its last
-- successful run committed (a run reads from there minus the lookback).
SELECT account_id, region, epoch_ms(max(watermark)) AS watermark_ms
FROM ${ingest_runs}
WHERE status = 'succeeded'
GROUP BY account_id, region
