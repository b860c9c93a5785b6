"""Tables, plots and the self-contained HTML report (``html``) built from finished run folders.

May import: numpy, matplotlib, ``stvfm.errors``, ``stvfm.atomic``, ``stvfm.training.folders``
(what marks a folder's state), ``stvfm.training.scoring`` and ``stvfm.training.significance`` (each
test window's error and the paired test on them, read by the one rule that scored the run) and
``stvfm.ledger`` (tables mix run folders and ledger records); never the rest of ``stvfm.training``,
``stvfm.experiments`` or the CLI.

Imports from stvfm: ``stvfm.training.folders``, ``stvfm.training.scoring``, ``stvfm.training.significance``,
``stvfm.ledger``, ``stvfm.atomic``, ``stvfm.errors``.
"""
