"""Forecasters: pure ``nn.Module`` models, one file per family, registered by name.

Owns: the forecaster and config contracts (``base``: ``Forecaster``, ``ModelConfig``,
``ForecastShape``), the name table (``registry``), every model file, the building blocks
several models share (``layers``, ``patching``, ``recurrent``) and the process pool that
classical models fit in (``process_pool``).

May import: torch, numpy, statsmodels (in fitting processes), ``stvfm.errors`` and, only
while a model is built, ``stvfm.backbones``; never ``stvfm.data``, ``stvfm.training``,
``stvfm.reports``, ``stvfm.experiments`` or the CLI: batches arrive as plain dicts.

Importing this package imports every model file so the registry is complete.

A learned baseline keeps its paper's architecture with widths scaled down for small city grids:
its config's defaults are the widths it uses, stated there only.
"""

import importlib
import pkgutil

from stvfm.models.base import ClassicalForecaster, Forecaster, ForecastShape
from stvfm.models.registry import create_model, get_model_entry, list_models, register_model

for _module in pkgutil.walk_packages(__path__, prefix=f"{__name__}."):
    if _module.name.rsplit(".", 1)[-1] not in {"base", "registry"}:
        importlib.import_module(_module.name)

__all__ = ["ClassicalForecaster", "Forecaster", "ForecastShape", "create_model", "get_model_entry", "list_models", "register_model"]
