"""The engine's default work budgets and size limits, without importing the engine.

The command line states these defaults in its help; keeping them in a module
of their own lets ``ceilgrid --help`` start without numpy or scipy.
"""

#: The optimiser competes at serving time only in rooms with at most this many usable cells.
DEFAULT_OPTIMISER_MAX_CELLS = 400
#: The staggered model runs in rooms of at most this many usable cells (its
#: local moves cost more than the room grows; the 100x80 hall has 8,000).
STAGGERED_MAX_CELLS = 12_000
#: The spread models run in rooms of at most this many usable cells (200x200 tiles).
SPREAD_MAX_CELLS = 40_000
#: Wall-clock safety net (s) of the optimiser on one stage of one room at serving
#: time; the deterministic bound is its node budget (``STAGE_NODE_LIMIT``).
DEFAULT_OPTIMISER_TIME_S = 10.0
