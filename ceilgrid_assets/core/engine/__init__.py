"""The placement engine: grids, rules, models, the exact optimiser and the pipeline.

Numpy and scipy only; it reports through :mod:`.hooks` and never imports
learning, outputs, observability or Dagster (``make lint`` checks the contracts).
Importing it defers numpy's developer tools (:mod:`.startup`) before any of its
modules loads scipy.
"""

from ceilgrid_assets.core.engine.startup import defer_numpy_tools

defer_numpy_tools()
