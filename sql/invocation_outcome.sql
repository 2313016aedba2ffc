-- What an invocation's state means, in one place for every view and the report:
--   succeeded   Success
--   failed      Failed (undeliverable ones too: StatusDetails 'Undeliverable')
--   timed_out   TimedOut (delivery and execution time-outs)
--   cancelled   Cancelled: ended, but neither a success nor a failure
--   open        Pending, InProgress, Delayed, Cancelling: not finished yet
--   expired     open when the API stopped returning it: no final state (expired from the API)
--   other       a status AWS adds later (or none): kept verbatim, counted as finished
-- A failure is a terminal failure state: failed or timed_out.
CREATE OR REPLACE MACRO invocation_outcome(status, expired_while_open_at) AS
    CASE
        WHEN status = 'Success' THEN 'succeeded'
        WHEN status = 'Failed' THEN 'failed'
        WHEN status = 'TimedOut' THEN 'timed_out'
        WHEN status = 'Cancelled' THEN 'cancelled'
        WHEN status IN ('Pending', 'InProgress', 'Delayed', 'Cancelling')
            THEN CASE WHEN expired_while_open_at IS NULL THEN 'open' ELSE 'expired' END
        ELSE 'other'
    END;
