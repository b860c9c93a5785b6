"""Forecasters: pure ``nn.Module`` models, one file per family, registered by name.

Owns: the forecaster and config contracts (``base``: ``Forecaster``, ``ModelConfig``;
``ForecastShape`` lives in ``stvfm.shape`` and is exposed here too), the name table (``registry``), every model file, the building blocks
several models share (``layers``, ``patching``, ``recurrent``) and the process pool that
classical models fit in (``process_pool``).

May import: torch, numpy, statsmodels (in fitting processes), ``stvfm.errors`` and, only
while a model is built, ``stvfm.backbones``; never ``stvfm.data``, ``stvfm.training``,
``stvfm.reports``, ``stvfm.experiments`` or the CLI: batches arrive as plain dicts.

Importing this package imports every model file so the registry is complete.

A learned baseline keeps its paper's architecture with widths scaled down for small city grids:
its config's defaults are the widths it uses, stated there only.

Imports from stvfm: ``stvfm.errors``, ``stvfm.values``, ``stvfm.shape``, ``stvfm.attention``,
``stvfm.backbones``.
"""

from stvfm.models.base import ClassicalForecaster, Forecaster
from stvfm.models.registry import create_model, ensure_loaded, get_model_entry, list_models, register_model
from stvfm.shape import ForecastShape

ensure_loaded()

__all__ = ["ClassicalForecaster", "Forecaster", "ForecastShape", "create_model", "get_model_entry", "list_models", "register_model"]
