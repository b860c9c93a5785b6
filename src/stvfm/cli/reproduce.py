"""``stvfm reproduce``: one command per paper experiment, fits resumed or reused, a report written."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from stvfm.cli.options import console, parse_options, quiet_lightning, with_settings
from stvfm.errors import StvfmError


def register(app: typer.Typer) -> None:
    @app.command("reproduce")
    @with_settings("dataset", "channel", "steps", "max_epochs", "max_minutes", "limit_train_batches",
                   "optim.warmup_epochs", "batch_size", "optim.lr", "precision", "data_root", required=("dataset",),
                   default_words="with --recipes the recipe's, else ")
    def reproduce_command(
        settings: dict[str, Any],
        experiment: Annotated[str, typer.Option("--experiment", "-e", help="main, ablation, backbones, video, lambda, pretraining or efficiency.")],
        out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for the runs and the report (shared by experiments: runs are reused). Default: $STVFM_RUNS/reproduce (STVFM_RUNS defaults to runs).")] = None,
        report_dir: Annotated[Optional[Path], typer.Option(help="Folder for the report, CSV and figure (default: --out).")] = None,
        report_only: Annotated[bool, typer.Option(help="Train nothing: write the report from the runs finished so far.")] = False,
        ledger: Annotated[Optional[Path], typer.Option(help="Ledger folder: a record of the same run and budget stands in for a run with no finished folder (e.g. docs/results/ledger on a fresh clone).")] = None,
        quick: Annotated[bool, typer.Option(help="Smoke run: one seed, one short epoch per fit. The numbers mean nothing.")] = False,
        seed: Annotated[Optional[list[int]], typer.Option(help="Seed, repeatable (default 0 1 2; 0 with --quick).")] = None,
        recipes: Annotated[bool, typer.Option(help="Train every model at its own published recipe (stvfm/recipes) instead of one shared optimiser setting.")] = False,
        executor: Annotated[str, typer.Option(help="Where fits run: local, submitit (SLURM when present) or submitit-local (pip install 'stvfm[cluster]').")] = "local",
        option: Annotated[Optional[list[str]], typer.Option("--set", help="Model option KEY=VALUE (YAML value), repeatable, for every run whose model has it (e.g. calendar_init_std=1 for ST-VFM).")] = None,
    ) -> None:
        """Run a paper experiment (every fit it needs) and write a Markdown report and CSV beside the paper's figures."""
        from stvfm.experiments.reproduce import ReproduceConfig, reproduce
        from stvfm.runs_root import default_run_folder

        quiet_lightning()
        out = out or default_run_folder("reproduce")
        config = ReproduceConfig(
            experiment=experiment, dataset=settings.pop("dataset"), out=str(out), quick=quick,
            report_dir=None if report_dir is None else str(report_dir), report_only=report_only,
            ledger=None if ledger is None else str(ledger), seeds=tuple(seed) if seed else None,
            recipes=recipes, executor=executor, settings=settings, model_options=parse_options(option),
        )
        outcomes, paths = reproduce(config, announce=lambda message: console.print(f"[bold]fit[/] {message}"))
        console.print(paths["report"].read_text(), markup=False, highlight=False)
        for name, path in paths.items():
            console.print(f"{name}: {path}")
        failed = [outcome for outcome in outcomes if outcome.status.startswith("failed")]
        if failed:
            raise StvfmError(f"{len(failed)} of {len(outcomes)} runs failed; see {paths['report']}")
