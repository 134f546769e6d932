"""Registers the built-in datasets (imported by the registry on first use)."""

from robust_compress.data import imagefolder, sources  # noqa: F401 - they register themselves
