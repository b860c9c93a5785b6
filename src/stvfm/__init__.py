"""stvfm: spatio-temporal forecasting on city grids by reprogramming frozen vision foundation models."""

__version__ = "0.1.0"
