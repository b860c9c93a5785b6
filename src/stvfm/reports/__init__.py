"""Tables, plots and the self-contained HTML report (``html``) built from finished run folders.

May import: numpy, matplotlib, ``stvfm.errors``, ``stvfm.atomic`` and ``stvfm.training.folders``
(what marks a folder's state); never the rest of ``stvfm.training``, ``stvfm.experiments`` or the CLI.

Imports from stvfm: ``stvfm.training.folders``, ``stvfm.ledger``, ``stvfm.atomic``, ``stvfm.errors``.
"""
