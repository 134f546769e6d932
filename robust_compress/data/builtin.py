"""Registers the built-in datasets (imported by the registry on first use).

The named formats first, then ``imagefolder``: the order of ``robust-compress list`` and of
docs/recipes.md, whichever of the two modules is imported first.
"""

from robust_compress.data import sources  # noqa: F401, I001 - registers the named formats
from robust_compress.data import imagefolder  # noqa: F401 - registers imagefolder
