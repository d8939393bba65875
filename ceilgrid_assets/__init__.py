"""ceilgrid: completes suspended-ceiling layouts.

One BLAS thread per process unless the caller chose otherwise: the engine's matrix
products are small, so OpenBLAS's default of a thread per core only adds
synchronisation (and, beside ``--jobs`` workers, oversubscribes the cores): a
1,000-room building took 0.84x the wall time and 0.82x the CPU with one thread. It
also keeps the summation order of float products from following the core count.
OpenBLAS reads the variable when numpy loads, which nothing in ceilgrid does
before this package.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
