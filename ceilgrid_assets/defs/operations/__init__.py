"""Operations: what watches the platform itself (alerts on failed runs, checks, freshness)."""

import dagster as dg

from ceilgrid_assets.defs.operations.alerts import (
    check_failure_alerts,
    freshness_failure_alerts,
    run_failure_webhook,
)

defs = dg.Definitions(sensors=[run_failure_webhook, check_failure_alerts, freshness_failure_alerts])
