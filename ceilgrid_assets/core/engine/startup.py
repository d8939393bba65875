"""Start-up cost: numpy's developer tools load only when something uses them.

SciPy's array-API layer (loaded by every scipy subpackage the engine uses) clones
the numpy namespace with ``from numpy import *``, which imports each submodule
numpy lists, among them ``numpy.f2py`` (the Fortran wrapper generator) and
``numpy.testing``: about 80 ms of every ``ceilgrid layout`` and ``validate``
start, and of every worker's first scipy.optimize import, for modules the engine
never calls. :func:`defer_numpy_tools` makes those two lazy (the standard
library's :class:`importlib.util.LazyLoader`): importing them binds a module
object, and its code runs on the first attribute anyone reads, so a program that
does use them (a test suite, a notebook) gets the real module unchanged.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType

#: numpy submodules that ``from numpy import *`` loads and the engine never uses.
DEFERRED_MODULES = frozenset({"numpy.f2py", "numpy.testing"})


class _DeferredFinder:
    """A meta path finder that hands out :data:`DEFERRED_MODULES` with a lazy loader."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name not in DEFERRED_MODULES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


def defer_numpy_tools() -> None:
    """Install the finder once, ahead of the standard ones (a no-op for modules
    already imported)."""
    if not any(isinstance(finder, _DeferredFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _DeferredFinder())
