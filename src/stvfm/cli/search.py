"""``stvfm search``: an Optuna study of the training recipe on validation, resumable from its storage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from stvfm.cli.options import (
    AcceleratorOption,
    ChannelOption,
    DatasetOption,
    MaxMinutesOption,
    PrecisionOption,
    RootOption,
    StepsOption,
    batch_limit,
    channel_index,
    console,
    parse_options,
    quiet_lightning,
)


def register(app: typer.Typer) -> None:
    @app.command("search")
    def search_command(
        dataset: DatasetOption,
        model: Annotated[str, typer.Option("--model", "-m", help="Registered learned model.")] = "stvfm",
        out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for the trial runs and the summary. Default: $STVFM_RUNS/search/STUDY.")] = None,
        storage: Annotated[Optional[str], typer.Option(help="Optuna storage URL shared by every worker. Default: sqlite:///OUT/study.db.")] = None,
        study: Annotated[str, typer.Option(help="Study name inside the storage.")] = "recipe",
        trials: Annotated[int, typer.Option(help="Finished trials the study should reach (all workers together); a rerun continues up to it.")] = 20,
        channel: ChannelOption = None,
        steps: StepsOption = None,
        max_epochs: Annotated[int, typer.Option(help="Epochs per trial.")] = 10,
        max_minutes: MaxMinutesOption = None,
        limit_train_batches: Annotated[float, typer.Option(help="Fraction (<=1) or count (>1) of training batches per epoch of a trial.")] = 1.0,
        patience: Annotated[int, typer.Option(help="Early-stopping patience within a trial.")] = 20,
        batch_sizes: Annotated[str, typer.Option(help="Comma-separated batch sizes to choose from.")] = "8,16,32",
        precision: PrecisionOption = None,
        seed: Annotated[int, typer.Option(help="Training seed of every trial.")] = 0,
        sampler_seed: Annotated[Optional[int], typer.Option(help="Seed of the TPE sampler (default: none, so workers draw differently).")] = None,
        accelerator: AcceleratorOption = "auto",
        option: Annotated[Optional[list[str]], typer.Option("--set", help="Model option KEY=VALUE fixed for every trial (not searched), repeatable.")] = None,
        data_root: RootOption = None,
    ) -> None:
        """Search lr, batch size, warm-up, weight decay, EMA decay, dropout and flow weight for the lowest validation error."""
        from stvfm.errors import ConfigError

        try:
            import optuna
        except ImportError:
            raise ConfigError("stvfm search needs Optuna: pip install 'stvfm[search]'") from None
        from stvfm.experiments.search import SearchConfig, search
        from stvfm.runs_root import default_run_folder

        quiet_lightning()
        import warnings

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeats: stable in use
        out = out or default_run_folder("search", study)
        try:
            sizes = tuple(int(size) for size in batch_sizes.split(",") if size.strip())
        except ValueError:
            raise ConfigError(f"--batch-sizes expects comma-separated integers, got {batch_sizes!r}") from None
        config = SearchConfig(
            dataset=dataset, storage=storage or f"sqlite:///{out / 'study.db'}", out=str(out), study_name=study,
            model=model, trials=trials, channel=channel_index(channel), steps=steps, model_options=parse_options(option),
            max_epochs=max_epochs, max_minutes=max_minutes, limit_train_batches=batch_limit(limit_train_batches),
            patience=patience, precision=precision, batch_sizes=sizes, seed=seed, sampler_seed=sampler_seed,
            accelerator=accelerator, data_root=data_root,
        )
        summary = search(config)
        console.print(Path(summary["paths"]["markdown"]).read_text(), markup=False, highlight=False)
        console.print(f"written: {summary['paths']['markdown']}, {summary['paths']['json']}")
