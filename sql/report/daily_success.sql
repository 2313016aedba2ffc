-- Success rate per UTC day and document from $start to $end (inclusive), over
-- all accounts and regions: succeeded / finished, NULL when nothing finished.
SELECT
    requested_date,
    coalesce(document_name, '(no document)') AS document_name,
    sum(succeeded)::BIGINT AS succeeded,
    sum(finished)::BIGINT AS finished,
    (sum(succeeded) / nullif(sum(finished), 0))::DOUBLE AS success_rate
FROM compliance_daily
WHERE requested_date BETWEEN CAST($start AS DATE) AND CAST($end AS DATE)
GROUP BY requested_date, coalesce(document_name, '(no document)')
ORDER BY document_name, requested_date;
