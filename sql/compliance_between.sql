-- compliance_daily summed over an inclusive range of UTC dates, per account,
-- region and document ("did patching run everywhere last quarter?"), with
-- success_rate recomputed from the sums (succeeded / finished).
CREATE OR REPLACE MACRO compliance_between(from_date, to_date) AS TABLE
WITH summed AS (
    SELECT
        account_id,
        region,
        document_name,
        sum(invocations)::BIGINT AS invocations,
        sum(succeeded)::BIGINT AS succeeded,
        sum(failed)::BIGINT AS failed,
        sum(timed_out)::BIGINT AS timed_out,
        sum(cancelled)::BIGINT AS cancelled,
        sum(undeliverable)::BIGINT AS undeliverable,
        sum(open)::BIGINT AS open,
        sum(expired)::BIGINT AS expired,
        sum(other)::BIGINT AS other,
        sum(finished)::BIGINT AS finished
    FROM compliance_daily
    WHERE requested_date BETWEEN CAST(from_date AS DATE) AND CAST(to_date AS DATE)
    GROUP BY account_id, region, document_name
)
SELECT
    *,
    (succeeded / nullif(finished, 0))::DOUBLE AS success_rate
FROM summed;
