"""Deprecated name of :mod:`nbutils.dask` (the Dask engine became a package): use that instead.

Kept so that ``from nbutils.dask_engine import connect, ...`` in existing code keeps working;
it re-exports the public names of :mod:`nbutils.dask` and nothing else.
"""

import warnings

from nbutils.dask import *  # noqa: F403
from nbutils.dask import __all__  # noqa: F401

warnings.warn(
    "nbutils.dask_engine is deprecated: import from nbutils.dask instead.",
    DeprecationWarning,
    stacklevel=2,
)
