"""nbutils: the Japanese Numerai beginner's guide, made runnable and tested.

One module per tutorial step (see docs/design-decisions.md and docs/design.md):

- ``nbutils.data``        2A  load the data (synthetic, numerapi download, loading)
- ``nbutils.features``    2B  feature engineering
- ``nbutils.train``       2C  LightGBM training
- ``nbutils.metrics``     2D  measuring the model, 3 diagnostics
- ``nbutils.submission``  2E  the submission file
- ``nbutils.neutralize``  2F  neutralization
- ``nbutils.plots``       the figures the notebooks show
- ``nbutils.run.pipeline``    the papermill chain (``python -m nbutils run``)

Importing ``nbutils`` itself is cheap: submodules are imported on use.
"""

from nbutils.errors import NbutilsError
from nbutils.versions import require

# Everything in nbutils computes with these three: an older release stops here, named.
require("numpy", "pandas", "pyarrow")

__version__ = "0.1.0"
__all__ = ["NbutilsError", "__version__"]
