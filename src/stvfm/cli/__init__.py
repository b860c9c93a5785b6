"""Thin command-line layer: each command parses its options, calls one library function, prints, exits.

Owns: the entry point and error-to-exit-code mapping (``main``), the options and flag-to-value
helpers every group shares (``options``), and one module per command group: ``runs`` (models,
evaluate, fit, pretrain, test, predict), ``reports`` (compare, plot), ``bench``, ``reproduce``,
``search``, ``serve``, ``data``, ``ledger`` and ``export`` (export, export-bench). Rules about runs
(which models a command accepts, which defaults apply) live in the library, not here.

May import: typer, rich, yaml, ``stvfm.training.settings`` (the declarations its run options are
generated from; no torch) and, inside each command (so ``stvfm --help`` stays fast), any library
module; never ``stvfm.testing``.

Imports from stvfm: any layer below it: ``stvfm.experiments``, ``stvfm.serving``, ``stvfm.export``,
``stvfm.reports``, ``stvfm.ledger``, ``stvfm.training``, ``stvfm.data``, ``stvfm.models``,
``stvfm.backbones``, ``stvfm.runs_root``, ``stvfm.atomic``, ``stvfm.errors``.
"""
