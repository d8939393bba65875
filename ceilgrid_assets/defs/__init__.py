"""Dagster definitions by domain: ``serving/``, ``training/``, ``operations/``.

Each domain package holds its assets, checks, sensors, schedules and jobs and
exposes ``defs``; shared glue (resources, table metadata, telemetry scopes) sits
here; ``ceilgrid_assets.definitions`` merges the domains.
"""

import warnings

import dagster as dg

# Two deliberate uses of non-stable Dagster APIs (backfill policies batch building
# partitions; partitioned checks validate each building) would otherwise print a
# warning in every run's log.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)
warnings.filterwarnings(
    "ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning
)
