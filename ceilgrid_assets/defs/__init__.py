"""Dagster definitions by domain: datasets, features, models, layouts, reports, checks,
sensors, schedules, resources; ``ceilgrid_assets.definitions`` assembles them."""

import warnings

import dagster as dg

# Two deliberate uses of non-stable Dagster APIs (backfill policies batch building
# partitions; partitioned checks validate each building) would otherwise print a
# warning in every run's log.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`",
                        category=dg.BetaWarning)
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec",
                        category=dg.PreviewWarning)
