"""ST-LLM: spatial-temporal large language model for traffic prediction
(Liu, Yang, Xu, Li, Lin, Guo, Long, Huang; MDM 2024).

Every location is one token of a pretrained GPT-2. A token's embedding fuses three parts:
a linear embedding of its whole history, a learnable embedding of the location (node), and
time-of-day plus day-of-week embeddings of the last history step. The GPT-2 runs with its
partially frozen attention (PFA) scheme: in the first ``llm_layers - unfrozen_layers``
layers attention and feed-forward weights stay frozen; in the last ``unfrozen_layers`` the
attention trains too; position embeddings and layer norms train everywhere; feed-forward
weights never do. A linear head regresses each token to its ``Q`` future values.

Weights (``weights``): ``hub:NAME`` downloads with ``from_pretrained`` (needs a network),
``path:FILE_OR_DIR`` reads a local Hugging Face folder or a state-dict file (strict key
check), ``random`` starts from a fresh init. ``weights_label`` names the weights used so
that results of a randomly initialised GPT-2 are never presented as ST-LLM's.

Departures from the paper:
- A token may cover a ``patch x patch`` block of cells (default 1: one cell, as the paper),
  so grids larger than GPT-2's 1024 positions still fit. GPT-2's attention stays causal
  over the row-major token order, as in the authors' code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stvfm.errors import CheckpointError, ConfigError
from stvfm.models.base import Forecaster, ForecastShape
from stvfm.models.patching import pad_grid, padded_size, patchify, unpatchify
from stvfm.models.registry import register_model

#: State-dict keys of causal-mask buffers that older checkpoints carry and GPT2Model does not.
_BUFFER_SUFFIXES = (".attn.bias", ".attn.masked_bias")


@dataclass(frozen=True)
class STLLMConfig:
    #: ``hub:NAME`` (Hugging Face hub), ``path:FILE_OR_DIR`` (local weights) or ``random``.
    weights: str = "hub:gpt2"
    #: Leading GPT-2 layers kept (ST-LLM keeps 6 of GPT-2's 12).
    llm_layers: int = 6
    #: Last layers whose attention trains (the paper's U).
    unfrozen_layers: int = 1
    #: Width of each of the three embeddings (history, node, time) fused into one token.
    embed_width: int = 256
    #: Side of the square block of cells that forms one token.
    patch: int = 1
    #: ``GPT2Config`` fields to override (a tiny GPT-2 for tests, dropout, ...).
    gpt2_overrides: dict[str, Any] = field(default_factory=dict)


def _read_state_dict(weights_file: Path) -> dict[str, torch.Tensor]:
    try:
        if weights_file.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(weights_file))
        return torch.load(weights_file, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt files raise many different types
        raise CheckpointError(f"cannot read GPT-2 weights {weights_file}: {error}") from error


def _load_local_gpt2(path: Path, overrides: dict[str, Any]):
    """GPT2Model from a Hugging Face folder (config.json + weights) or a bare state-dict file."""
    # transformers is slow to import: only an ST-LLM being built pays for it.
    from transformers import GPT2Config, GPT2Model

    if path.is_dir():
        config_file = path / "config.json"
        candidates = [path / "model.safetensors", path / "pytorch_model.bin"]
        weights_file = next((candidate for candidate in candidates if candidate.is_file()), None)
        if not config_file.is_file() or weights_file is None:
            raise CheckpointError(f"{path} is not a GPT-2 folder: it needs config.json and model.safetensors or pytorch_model.bin")
        config = GPT2Config.from_json_file(str(config_file))
        for key, value in overrides.items():
            setattr(config, key, value)
    elif path.is_file():
        config = GPT2Config(**overrides)
        weights_file = path
    else:
        raise CheckpointError(f"GPT-2 weights {path} not found")
    state = _read_state_dict(weights_file)
    state = {key.removeprefix("transformer."): value for key, value in state.items()}
    state = {key: value for key, value in state.items() if key != "lm_head.weight" and not key.endswith(_BUFFER_SUFFIXES)}
    model = GPT2Model(config)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as error:
        raise CheckpointError(f"GPT-2 weights {weights_file} do not fit the configured GPT-2: {error}") from error
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"GPT-2 weights {weights_file} do not match GPT-2: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )
    return model


def load_gpt2(weights: str, overrides: dict[str, Any]):
    """Return ``(GPT2Model, label)`` for a ``weights`` spec; the label says what was loaded."""
    # transformers is slow to import: only an ST-LLM being built pays for it.
    from transformers import GPT2Config, GPT2Model

    kind, _, target = weights.partition(":")
    if kind == "random" and not target:
        return GPT2Model(GPT2Config(**overrides)), "GPT-2 (random-init)"
    if kind == "hub" and target:
        try:
            model = GPT2Model.from_pretrained(target, **overrides)
        except OSError as error:
            raise CheckpointError(
                f"could not load GPT-2 {target!r} from the Hugging Face hub ({error.__class__.__name__}). "
                "Without a network pass weights='path:FILE_OR_DIR' with local GPT-2 weights, or "
                "weights='random' (a randomly initialised GPT-2: results are then not ST-LLM's)"
            ) from error
        return model, f"GPT-2 (hub:{target})"
    if kind == "path" and target:
        return _load_local_gpt2(Path(target).expanduser(), overrides), f"GPT-2 (path:{target})"
    raise ConfigError(f"stllm weights must be 'hub:NAME', 'path:FILE_OR_DIR' or 'random', not {weights!r}")


def apply_partially_frozen_attention(gpt2: nn.Module, unfrozen_layers: int) -> None:
    """ST-LLM's PFA: norms and position embeddings train; attention only in the last layers."""
    for parameter in gpt2.parameters():
        parameter.requires_grad_(False)
    for parameter in [*gpt2.wpe.parameters(), *gpt2.ln_f.parameters()]:
        parameter.requires_grad_(True)
    first_unfrozen = len(gpt2.h) - unfrozen_layers
    for index, layer in enumerate(gpt2.h):
        for name, parameter in layer.named_parameters():
            trains_attention = index >= first_unfrozen and name.startswith("attn.")
            if name.startswith("ln_") or trains_attention:
                parameter.requires_grad_(True)


@register_model("stllm", STLLMConfig)
class STLLM(Forecaster):
    """ST-LLM (MDM 2024): grid cells as tokens of a partially frozen GPT-2."""

    def __init__(self, shape: ForecastShape, config: STLLMConfig):
        super().__init__(shape)
        self.config = config
        gpt2, self.weights_label = load_gpt2(config.weights, config.gpt2_overrides)
        if not 1 <= config.llm_layers <= len(gpt2.h):
            raise ConfigError(f"stllm llm_layers must lie in 1..{len(gpt2.h)} for these GPT-2 weights")
        if not 0 <= config.unfrozen_layers <= config.llm_layers:
            raise ConfigError("stllm unfrozen_layers must lie in 0..llm_layers")
        gpt2.h = gpt2.h[: config.llm_layers]
        gpt2.config.n_layer = config.llm_layers
        apply_partially_frozen_attention(gpt2, config.unfrozen_layers)
        self.gpt2 = gpt2

        padded_h, padded_w = padded_size(shape.height, shape.width, config.patch)
        self.padded = (padded_h, padded_w)
        tokens = (padded_h // config.patch) * (padded_w // config.patch)
        if tokens > gpt2.config.n_positions:
            raise ConfigError(
                f"stllm: {tokens} tokens exceed GPT-2's {gpt2.config.n_positions} positions; raise patch"
            )
        token_values = shape.channels * config.patch**2
        width = config.embed_width
        self.history_embedding = nn.Linear(shape.history * token_values, width)
        self.node_embedding = nn.Parameter(nn.init.xavier_uniform_(torch.empty(tokens, width)))
        self.slot_embedding = nn.Parameter(nn.init.xavier_uniform_(torch.empty(shape.slots_per_day, width)))
        self.weekday_embedding = nn.Parameter(nn.init.xavier_uniform_(torch.empty(7, width)))
        self.fusion = nn.Linear(3 * width, gpt2.config.n_embd)
        self.head = nn.Linear(gpt2.config.n_embd, shape.horizon * token_values)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        history = batch["x"]
        batch_size, steps, channels, height, width = history.shape
        patch = self.config.patch
        values = patchify(pad_grid(history, patch), patch)  # (B, P, N, C*p*p)
        tokens = values.shape[2]
        history_part = self.history_embedding(values.permute(0, 2, 1, 3).reshape(batch_size, tokens, -1))
        weekday, slot = batch["x_time"][:, -1, 0], batch["x_time"][:, -1, 1]
        time_part = (self.slot_embedding[slot] + self.weekday_embedding[weekday])[:, None].expand(-1, tokens, -1)
        node_part = self.node_embedding.expand(batch_size, -1, -1)
        embedded = self.fusion(torch.cat([history_part, time_part, node_part], dim=-1))
        hidden = self.gpt2(inputs_embeds=embedded, use_cache=False).last_hidden_state
        future = self.head(hidden).reshape(batch_size, tokens, self.shape.horizon, -1).transpose(1, 2)
        forecast = unpatchify(future, patch, channels, *self.padded)[..., :height, :width]
        return {"forecast": forecast}
