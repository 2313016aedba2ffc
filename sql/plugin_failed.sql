-- Whether a plugin failed: it ran and ended in failure (Failed, or TimedOut while
-- executing). A plugin that is pending, running, cancelled, skipped, or timed out
-- before it was ever delivered (DeliveryTimedOut, response code -1) did not fail.
CREATE OR REPLACE MACRO plugin_failed(status, status_details) AS
    coalesce(
        status = 'Failed'
        OR (status = 'TimedOut' AND status_details IS DISTINCT FROM 'DeliveryTimedOut'),
        false
    );
