"""The placement engine: grids, rules, models, the exact optimiser and the pipeline.

Numpy and scipy only; it reports through :mod:`.hooks` and never imports
learning, outputs, observability or Dagster (``make lint`` checks the contracts).
"""
