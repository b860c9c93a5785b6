"""The run configuration: ``RunConfig``, whose every field is declared once (with its role, type, range
and help) in ``training.settings``, and the protocol a run's model asks of the data."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from stvfm import host
from stvfm.data.series import ALL_CHANNELS, check_channel
from stvfm.data.windows import ProtocolConfig
from stvfm.errors import CheckpointError, ConfigError, StvfmError
from stvfm.models.registry import build_config, get_model_entry, recorded_options, resolved_options
from stvfm.training.settings import (  # noqa: F401  (the roles, named where runs are compared)
    BUDGET,
    IDENTITY,
    PLACEMENT,
    PRECISIONS,
    RUN_LENGTH_SCHEDULES,
    OptimConfig,
    RunSettings,
)
from stvfm.values import check_fields

#: Identity fields that only decide how a model trains, so none of a closed-form model's.
TRAINING_ONLY = ("batch_size", "limit_train_batches", "precision", "init_from", "optim")


@dataclass
class RunConfig(RunSettings):
    """The settings of one run (declared in ``RunSettings``) and what follows from them: identity,
    budget, the checks across settings."""

    def __post_init__(self) -> None:
        if isinstance(self.precision, int) and not isinstance(self.precision, bool):
            self.precision = str(self.precision)  # YAML reads `precision: 32` as a number
        check_fields(self, "")
        self.channel = 0 if self.channel is None else self.channel
        check_channel(self.channel)
        if self.precision == AUTO_PRECISION:  # recorded as what ran, so a run's identity never says "auto"
            self.precision = native_precision(self.accelerator)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"optim": self.optim.to_dict()}

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> RunConfig:
        """The run ``payload`` describes, every value checked against its field's type (``ConfigError``)."""
        payload = dict(payload)
        if "channel" in payload and payload["channel"] is None:  # a run's file from before ALL_CHANNELS was spelled out
            payload["channel"] = ALL_CHANNELS
        optim = payload.get("optim") or {}
        if not isinstance(optim, dict):
            raise ConfigError(f"optim: expected a mapping, got {optim!r}"[:120])
        unknown_optim = sorted(set(optim) - {f.name for f in dataclasses.fields(OptimConfig)})
        if unknown_optim:
            raise ConfigError(f"optim: unknown setting(s) {', '.join(map(str, unknown_optim))}")
        payload["optim"] = OptimConfig(**optim)
        known = {f.name for f in dataclasses.fields(cls)}
        missing = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING and f.name not in payload]
        if missing:
            raise ConfigError(f"missing setting(s) {', '.join(missing)}")
        return cls(**{k: v for k, v in payload.items() if k in known})

    @classmethod
    def from_record(cls, payload: Any, where: str | os.PathLike) -> RunConfig:
        """The run a saved record (config.yaml, metrics settings, checkpoint) describes, options as it trained
        them; a record whose values do not fit their settings is the record's one-line ``CheckpointError``."""
        if not isinstance(payload, dict):
            raise CheckpointError(f"{where}: malformed run record (not a mapping of settings)")
        try:
            config = cls.from_dict(payload)
        except (StvfmError, TypeError, ValueError) as error:
            raise CheckpointError(f"{where}: malformed run record ({str(error)[:200]})") from None
        try:
            config.model_options = recorded_options(config.model, config.model_options)
        except StvfmError:
            pass  # an unknown model or option: it differs from any run of today's models
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

    def identity_differences(self, other: RunConfig) -> list[str]:
        """Names of the identity fields on which ``other`` is another run."""
        mine, theirs = self.identity(), other.identity()
        if mine.get("data_sha256") is None or theirs.get("data_sha256") is None:
            mine.pop("data_sha256", None), theirs.pop("data_sha256", None)  # one side does not know its data
        spans = f"max_epochs (the {self.optim.schedule} schedule spans them)"
        named = {"max_epochs": spans, "data_sha256": "data (the file's contents changed)"}
        return [named.get(key, key) for key in mine | theirs if mine.get(key) != theirs.get(key)]

    def validate(self) -> None:
        """Refuse settings that would silently run something else than asked, before anything is written."""
        check_fields(self, "")
        if not (self.devices == "auto" or (isinstance(self.devices, int) and (self.devices >= 1 or self.devices == -1))
                or (isinstance(self.devices, str) and all(part.strip().isdigit() for part in self.devices.split(",")))):
            raise ConfigError(f"devices must be a count (-1: all), 'auto' or a list of device indices like '0,1', "
                              f"got {self.devices!r}")
        if self.max_epochs == 0 and not self.init_from:
            raise ConfigError("max_epochs: 0 only with --init-from (to test its weights); give at least 1")
        out = Path(self.out)
        if out.exists() and not out.is_dir():
            raise ConfigError(f"{out}: exists and is not a folder; give --out a folder for the run")
        if out.resolve() == Path(out.resolve().anchor):
            raise ConfigError(f"{out}: is the root of the file system; give --out a folder of its own for the run")
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
