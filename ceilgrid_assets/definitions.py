"""The ceilgrid code location: each domain's definitions, merged, with one set of resources."""

import dagster as dg

from ceilgrid_assets.defs import operations, serving, training
from ceilgrid_assets.defs.resources import build_resources, run_executor


def build_definitions() -> dg.Definitions:
    """The code location as the environment configures it (resources, run executor)."""
    return dg.Definitions.merge(
        serving.defs,
        training.defs,
        operations.defs,
        dg.Definitions(resources=build_resources(), executor=run_executor()),
    )


defs = build_definitions()
