"""The run configuration: one typed ``RunConfig`` whose every field is declared identity, budget or
placement once, and the protocol a run's model asks of the data."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from stvfm import host
from stvfm.data.windows import ProtocolConfig
from stvfm.errors import CheckpointError, ConfigError, StvfmError
from stvfm.models.registry import build_config, get_model_entry, recorded_options, resolved_options
from stvfm.training.optim import RUN_LENGTH_SCHEDULES, OptimConfig

#: What a field of ``RunConfig`` is to the run's identity (``field(metadata={"role": ...})``):
#: - identity: decides the result; a run folder, a resume or a reused result must agree on every one.
#: - budget: how long the same run trains; a larger budget extends a run rather than making another.
#: - placement: where and how fast it runs (folder, devices, workers, progress); results do not depend on it.
IDENTITY, BUDGET, PLACEMENT = "identity", "budget", "placement"
#: Identity fields that only decide how a model trains, so none of a closed-form model's.
TRAINING_ONLY = ("batch_size", "limit_train_batches", "precision", "init_from", "optim")


def _role(role: str, default: Any = dataclasses.MISSING, added_later: bool = False, **kwargs: Any) -> Any:
    """``added_later``: a field that came after runs were first recorded; at its default it leaves a
    ledger record's name as it was (``RunConfig.defaults_added_later``)."""
    return field(default=default, metadata={"role": role, "added_later": added_later}, **kwargs)


@dataclass
class RunConfig:
    """Everything that decides a run's result, each field declared identity, budget or placement once."""

    model: str = _role(IDENTITY)
    dataset: str = _role(IDENTITY)
    out: str = _role(PLACEMENT)
    channel: int | None = _role(IDENTITY, 0)
    steps: int | None = _role(IDENTITY, None)  # None: the dataset's default period (taxinyc1: the paper's 60 days)
    scaling: str = _role(IDENTITY, "train")  # "train" (fit on the training split) or "all" (UniST's variant)
    # what a window's history with missing values reads: "last", "slot-mean" or "skip" (stvfm.data.gaps)
    gap_fill: str = _role(IDENTITY, "last", added_later=True)
    model_options: dict[str, Any] = _role(IDENTITY, default_factory=dict)
    max_epochs: int = _role(BUDGET, 200)
    max_minutes: float | None = _role(BUDGET, None)  # wall-clock cap on training; the best checkpoint so far is tested
    patience: int = _role(BUDGET, 20)  # early-stopping patience in epochs on validation loss
    batch_size: int | None = _role(IDENTITY, None)  # None: UniST's rule by grid size
    eval_batch_size: int | None = _role(PLACEMENT, None)
    limit_train_batches: float | int = _role(IDENTITY, 1.0)  # a fraction or a count, for quick runs
    precision: str = _role(IDENTITY, "32")  # "32", "bf16" (autocast) or "auto" (bf16 where the hardware has it)
    compile_backbone: bool = _role(PLACEMENT, False)  # torch.compile the frozen VFM (speed only; results unchanged)
    seed: int = _role(IDENTITY, 0)
    init_from: str | None = _role(IDENTITY, None)  # checkpoint of the same model and grid whose weights start this run
    optim: OptimConfig = _role(IDENTITY, default_factory=OptimConfig)
    accelerator: str = _role(PLACEMENT, "auto")
    devices: int | str = _role(PLACEMENT, 1)
    num_nodes: int = _role(PLACEMENT, 1)
    strategy: str = _role(PLACEMENT, "auto")
    num_workers: int = _role(PLACEMENT, 0)
    data_root: str | None = _role(PLACEMENT, None)
    progress: bool = _role(PLACEMENT, True)

    def __post_init__(self) -> None:
        if self.precision == AUTO_PRECISION:  # recorded as what ran, so a run's identity never says "auto"
            self.precision = native_precision(self.accelerator)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"optim": self.optim.to_dict()}

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> "RunConfig":
        payload = dict(payload)
        payload["optim"] = OptimConfig(**payload.get("optim", {}))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in payload.items() if k in known})

    @classmethod
    def from_record(cls, payload: Any, where: str | os.PathLike) -> "RunConfig":
        """The run a saved record (config.yaml, metrics settings, checkpoint) describes, options as it trained them."""
        try:
            config = cls.from_dict(payload)
            config.model_options = recorded_options(config.model, config.model_options)
        except StvfmError:
            return config  # an unknown model or option: it differs from any run of today's models
        except (TypeError, ValueError, AttributeError) as error:
            raise CheckpointError(f"{where}: malformed run record ({type(error).__name__}: {str(error)[:160]})") from None
        return config

    def _fields(self, role: str) -> dict[str, Any]:
        values = self.to_dict()
        return {f.name: values[f.name] for f in dataclasses.fields(self) if f.metadata["role"] == role}

    def identity(self) -> dict[str, Any]:
        """The fields that identify the run, model options with every default filled in; a model
        that is not trained (a closed form) is not told apart by how training would have run.

        Max epochs is a budget, except under a schedule stretched over the run (cosine, one-cycle):
        there more epochs change the rate at every step, so extending such a run would splice two
        schedules into a result that neither budget gives."""
        identity = self._fields(IDENTITY)
        try:
            identity["model_options"] = resolved_options(self.model, self.model_options)
            if not get_model_entry(self.model).cls.trainable:
                return {key: value for key, value in identity.items() if key not in TRAINING_ONLY}
        except StvfmError:
            pass
        if self.optim.schedule in RUN_LENGTH_SCHEDULES:
            identity["max_epochs"] = self.max_epochs
        return identity

    def budget(self) -> dict[str, Any]:
        return self._fields(BUDGET)

    @classmethod
    def field_names(cls, role: str) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata["role"] == role)

    @classmethod
    def defaults_added_later(cls) -> dict[str, Any]:
        """Fields added after runs were first recorded, with the defaults that every earlier run had."""
        return {f.name: f.default for f in dataclasses.fields(cls) if f.metadata["added_later"]}

    def identity_differences(self, other: "RunConfig") -> list[str]:
        """Names of the identity fields on which ``other`` is another run."""
        mine, theirs = self.identity(), other.identity()
        spans = f"max_epochs (the {self.optim.schedule} schedule spans them)"
        return [spans if key == "max_epochs" else key for key in mine | theirs if mine.get(key) != theirs.get(key)]

    def validate(self) -> None:
        """Refuse settings that would silently run something else than asked, before anything is written."""
        if self.channel is not None and (isinstance(self.channel, bool) or self.channel < 0):
            raise ConfigError(f"channel must be 0 or more (or all channels), got {self.channel}")
        if self.max_epochs < 0 or (self.max_epochs == 0 and not self.init_from):
            raise ConfigError(f"max epochs must be at least 1 (0 only with --init-from, to test its weights), "
                              f"got {self.max_epochs}")
        if not self.limit_train_batches > 0:
            raise ConfigError(f"limit_train_batches must be a fraction in (0, 1] or a count >= 1, "
                              f"got {self.limit_train_batches}")
        for name in ("batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name.replace('_', ' ')} must be at least 1, got {value}")
        if self.patience < 0 or (self.max_minutes is not None and not self.max_minutes > 0):
            raise ConfigError(f"patience must be >= 0 and max minutes positive, got {self.patience}, {self.max_minutes}")
        out = Path(self.out)
        if out.exists() and not out.is_dir():
            raise ConfigError(f"{out}: exists and is not a folder; give --out a folder for the run")
        lightning_precision(self.precision)


def protocol_for(config: RunConfig) -> ProtocolConfig:
    """The windows the run's model reads: periodic context is what its options ask for."""
    model_config = build_config(config.model, config.model_options)
    return ProtocolConfig(
        channel=config.channel,
        steps=config.steps,
        scaling=config.scaling,
        gap_fill=config.gap_fill,
        daily_context=int(getattr(model_config, "daily_context", 0)),
        weekly_context=int(getattr(model_config, "weekly_context", 0)),
    )


#: Precision that becomes bf16 where the device multiplies bf16 natively and fp32 elsewhere.
AUTO_PRECISION = "auto"


def device_type(accelerator: str) -> str:
    """The torch device type Lightning's ``accelerator`` resolves to on this machine."""
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "cuda"
    return "cpu"


def native_precision(accelerator: str = "auto") -> str:
    """"bf16" where the run's device computes in it natively (CUDA with bf16, AVX512-BF16 or AMX CPUs), else "32"."""
    if device_type(accelerator) == "cuda":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32"
    return "bf16" if host.native_bf16_cpu() else "32"


def precision_label(precision: str) -> str:
    """How a run's precision is named to people and in the benchmark's peaks: "fp32", "bf16", "fp16"."""
    return {"32": "fp32", "16": "fp16"}.get(precision, precision)


def lightning_precision(precision: str) -> str:
    """Lightning's name for a run's precision; an unknown one is refused before anything is written."""
    choices = {"32": "32-true", "bf16": "bf16-mixed", "16": "16-mixed"}
    if precision not in choices:
        raise ConfigError(f"unknown precision {precision!r}; choose one of {', '.join(choices)}")
    return choices[precision]
