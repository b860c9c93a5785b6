"""Data layer: from a dataset name or file to the windows every model reads.

Owns: the dataset registry (``registry``: where files live, grid, interval, size), fetching and
checksums, readers (``sources``), the series type (``series``), the evaluation protocol
(``windows``: split, window starts, time features), missing values (``gaps``: the fill rules and
which windows a gap rules out), the one batch contract and its builder
(``batch``), scaling and the one de-scaling of forecasts (``scaling``), prepared data
(``prepared``), the Lightning DataModule (``datamodule``), a synthetic city (``synthetic``) and
raw trip records counted into a grid (``records``, with DuckDB).

May import: numpy, torch, lightning, the readers' libraries, ``stvfm.errors``, ``stvfm.atomic``
and ``stvfm.shape`` (``ForecastShape``); never ``stvfm.models``, ``stvfm.training``, ``stvfm.reports``,
``stvfm.experiments`` or the CLI.

Imports from stvfm: ``stvfm.errors``, ``stvfm.atomic``, ``stvfm.shape``.
"""
