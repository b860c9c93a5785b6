"""stvfm: spatio-temporal forecasting on city grids by reprogramming frozen vision foundation models.

``stvfm.load(folder)`` opens an export (``stvfm export RUN --out DIR``) as a forecaster; it is
imported on first use, so ``import stvfm`` stays cheap.

Imports from stvfm: ``stvfm.version``; ``stvfm.export`` on first use of ``stvfm.load``.
"""

from stvfm.version import __version__

__all__ = ["__version__", "load"]


def __getattr__(name: str):
    if name == "load":
        from stvfm.export import load

        return load
    raise AttributeError(f"module 'stvfm' has no attribute {name!r}")
