"""``stvfm search``: an Optuna study of the training recipe on validation, resumable from its storage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from stvfm.cli.options import console, quiet_lightning, with_settings
from stvfm.training.settings import SEARCH_TRIAL_DEFAULTS


def register(app: typer.Typer) -> None:
    @app.command("search")
    @with_settings("dataset", "model", "channel", "steps", "max_epochs", "max_minutes", "limit_train_batches", "patience",
                   "precision", "seed", "accelerator", "model_options", "data_root", required=("dataset",),
                   defaults={"model": "stvfm", **SEARCH_TRIAL_DEFAULTS}, default_words="the recipe's, else ")
    def search_command(
        settings: dict[str, Any],
        out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for the trial runs and the summary. Default: $STVFM_RUNS/search/STUDY.")] = None,
        storage: Annotated[Optional[str], typer.Option(help="Optuna storage URL shared by every worker. Default: sqlite:///OUT/study.db.")] = None,
        study: Annotated[str, typer.Option(help="Study name inside the storage.")] = "recipe",
        trials: Annotated[int, typer.Option(help="Finished trials the study should reach (all workers together); a rerun continues up to it.")] = 20,
        batch_sizes: Annotated[str, typer.Option(help="Comma-separated batch sizes to choose from.")] = "8,16,32",
        sampler_seed: Annotated[Optional[int], typer.Option(help="Seed of the TPE sampler (default: none, so workers draw differently).")] = None,
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
            dataset=settings.pop("dataset"), model=settings.pop("model"), storage=storage or f"sqlite:///{out / 'study.db'}",
            out=str(out), study_name=study, trials=trials, batch_sizes=sizes, sampler_seed=sampler_seed, settings=settings,
        )
        summary = search(config)
        console.print(Path(summary["paths"]["markdown"]).read_text(), markup=False, highlight=False)
        console.print(f"written: {summary['paths']['markdown']}, {summary['paths']['json']}")
