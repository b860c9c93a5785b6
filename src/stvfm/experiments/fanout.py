"""Independent fits of an experiment sent to a cluster through submitit (SLURM, or local processes).

Each job runs the same claim-fit-release step as the local runner, so runs are still reused,
resumed and locked the same way, and every result still lands in its run folder (and the
ledger, when ``STVFM_LEDGER`` is set): the cluster only decides where a fit runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stvfm.errors import ConfigError

if TYPE_CHECKING:
    from stvfm.experiments.plan import PlannedRun, ReproduceConfig
    from stvfm.training.config import RunConfig


def executor_for(config: ReproduceConfig):
    """submitit's executor: ``submitit`` picks SLURM when present, ``submitit-local`` forces processes here."""
    try:
        import submitit
    except ImportError:
        raise ConfigError(f"--executor {config.executor} needs submitit: pip install 'stvfm[cluster]'") from None
    folder = Path(config.out) / "submitit"
    if config.executor == "submitit-local":
        executor = submitit.LocalExecutor(folder=str(folder))
    else:
        executor = submitit.AutoExecutor(folder=str(folder))
    minutes = config.setting("max_minutes")
    executor.update_parameters(timeout_min=int(minutes * 1.5 + 30) if minutes else 24 * 60)
    return executor


#: One planned fit as a job runs it: (experiment, run, its config, announce) -> (status, metrics).
Job = Callable[["ReproduceConfig", "PlannedRun", "RunConfig", Callable[[str], None]], tuple[str, dict[str, Any] | None]]


def run_on_executor(config: ReproduceConfig, planned: list[tuple[PlannedRun, int, RunConfig]], job: Job,
                    announce: Callable[[str], None]) -> list[tuple[str, dict[str, Any] | None]]:
    """(status, metrics) per planned fit, in order, each fit being ``job`` (the scheduler's own
    claim-fit-release step, passed down so this module needs nothing above it) run in a job that
    prints its news; a job that dies is reported as failed, never dropped."""
    executor = executor_for(config)
    with executor.batch():
        jobs = [executor.submit(job, config, run, run_config, print) for run, _, run_config in planned]
    announce(f"{config.experiment}: {len(jobs)} fit(s) submitted through {config.executor} (logs in {executor.folder})")
    results = []
    for job in jobs:
        try:
            results.append(job.result())
        except Exception as error:  # the job's own errors are caught inside it; this is a dead job
            reason = (str(error).strip().splitlines() or [""])[-1][:200]
            results.append((f"failed: job {job.job_id} ended without a result ({reason})", None))
    return results
