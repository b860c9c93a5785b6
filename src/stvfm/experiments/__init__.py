"""The paper's experiments: its published figures and ``stvfm reproduce``, search and device checks.

Owns: the paper's figures (``paper``), planning an experiment (``plan``: planned runs, run keys,
``ReproduceConfig``), scheduling it (``schedule``: reuse, claims and locks, failures; ``fanout``
to submitit), its report (``report``), the entry point joining them (``reproduce``), the ledger's
tables (``ledger_report``), the recipe search (``search``) and the device smoke suite
(``device_suite``).

May import: ``stvfm.training``, ``stvfm.models``, ``stvfm.data``, ``stvfm.reports``,
``stvfm.ledger``, ``stvfm.backbones``; never the CLI or ``stvfm.testing``.

Imports from stvfm: ``stvfm.training``, ``stvfm.ledger``, ``stvfm.reports``, ``stvfm.models``, ``stvfm.data``,
``stvfm.backbones``, ``stvfm.shape``, ``stvfm.runs_root``, ``stvfm.atomic``, ``stvfm.errors``.
"""
