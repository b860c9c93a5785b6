"""Tables, plots and the self-contained HTML report (``html``) built from finished run folders.

May import: numpy, matplotlib, ``stvfm.errors``, ``stvfm.atomic``, ``stvfm.training.folders``
(what marks a folder's state) and ``stvfm.ledger`` (tables mix run folders and ledger records); never
the rest of ``stvfm.training``, ``stvfm.experiments`` or the CLI.

Imports from stvfm: ``stvfm.training.folders``, ``stvfm.ledger``, ``stvfm.atomic``, ``stvfm.errors``.
"""
