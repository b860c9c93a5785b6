"""``stvfm reproduce``: the paper's experiments as planned fits, a Markdown report and CSV files.

An experiment is a list of planned runs (a row label, a model and its options). Every run of
every seed gets its own folder under ``OUT/runs``, named by the model and the options that
differ from the model's defaults, so a configuration shared by several experiments (ST-VFM
full appears in all of them) is trained once. A folder whose ``metrics.json`` was written by
the same run (``RunConfig.identity``) and budget is reused; one of a smaller budget is extended;
one of another run stops the command; a folder with only ``last.ckpt`` resumes. With a ledger
(``--ledger``), a record of the same run and budget stands in for a run with no finished folder.
A run that fails is reported as failed, never dropped.

Several processes (cores, machines sharing a file system) can run the same experiment into one
``OUT``: each claims a run with a ``.running`` file before fitting it and leaves runs claimed by
a live process to their owner, reporting them as busy; re-running the command once all have
finished writes the complete report.

Planning lives in ``experiments.plan``, scheduling and claims in ``experiments.schedule``, the
report in ``experiments.report``; this module joins them and keeps their names importable here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from stvfm.experiments.plan import (  # noqa: F401  (re-exported)
    EXECUTORS,
    EXPERIMENTS,
    LAMBDAS,
    PlannedRun,
    ReproduceConfig,
    plan,
    reproduce_command,
    run_key,
)
from stvfm.experiments.report import ReportRow, efficiency_lines, report_rows, write_report  # noqa: F401
from stvfm.experiments.schedule import ERROR_NAME, LOCK_NAME, RunOutcome, finished_metrics, run_all, run_or_reuse  # noqa: F401


def reproduce(config: ReproduceConfig, announce: Callable[[str], None] = lambda message: None
              ) -> tuple[list[RunOutcome], dict[str, Path]]:
    """Run (or reuse) every run of the experiment, then write its report."""
    outcomes = run_all(config, announce)
    return outcomes, write_report(config, outcomes)
