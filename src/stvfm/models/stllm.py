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
check), ``random`` starts from a fresh init; the ViT backbones' weight providers load them
(``stvfm.backbones.language``). ``weights`` records what was loaded and ``weights_label``
names it, so that results of a randomly initialised GPT-2 are never presented as ST-LLM's.

Departures from the paper:
- A token may cover a ``patch x patch`` block of cells (default 1: one cell, as the paper),
  so grids larger than GPT-2's 1024 positions still fit. GPT-2's attention stays causal
  over the row-major token order, as in the authors' code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from stvfm.errors import ConfigError
from stvfm.models.base import Forecaster, ModelConfig
from stvfm.models.patching import pad_grid, padded_size, patchify, unpatchify
from stvfm.models.registry import register_model
from stvfm.shape import ForecastShape

if TYPE_CHECKING:  # stvfm.backbones (and transformers) load only when an ST-LLM is built
    from stvfm.backbones import WeightsInfo


@dataclass(frozen=True)
class STLLMConfig(ModelConfig):
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

    positive = ("llm_layers", "embed_width", "patch")

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.unfrozen_layers <= self.llm_layers:
            raise ConfigError("stllm unfrozen_layers must lie in 0..llm_layers")


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

    weights: WeightsInfo  # which GPT-2 weights were loaded, the same record a ViT backbone keeps

    def __init__(self, shape: ForecastShape, config: STLLMConfig):
        super().__init__(shape, config)
        from stvfm.backbones.language import load_gpt2

        gpt2, self.weights = load_gpt2(config.weights, config.gpt2_overrides)
        if not 1 <= config.llm_layers <= len(gpt2.h):
            raise ConfigError(f"stllm llm_layers must lie in 1..{len(gpt2.h)} for these GPT-2 weights")
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

    @property
    def weights_label(self) -> str:
        return self.weights.label

    def describe(self) -> dict[str, Any]:
        return {"weights": {"label": self.weights_label}}

    def _causal_mask(self, tokens: int, device: torch.device) -> torch.Tensor | None:
        """GPT-2's causal mask made on the batch's device: without one, transformers looks for packed
        sequences in the position ids with a host sync every step. Only SDPA reads a boolean mask;
        other attention kernels build their own."""
        if self.gpt2.config._attn_implementation != "sdpa":
            return None
        return torch.ones(tokens, tokens, dtype=torch.bool, device=device).tril()[None, None]

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        history = batch["x"]
        batch_size, steps, channels, height, width = history.shape
        patch = self.config.patch
        values = patchify(pad_grid(history, patch, self.shape.scaled_zero), patch)  # (B, P, N, C*p*p)
        tokens = values.shape[2]
        history_part = self.history_embedding(values.permute(0, 2, 1, 3).reshape(batch_size, tokens, -1))
        weekday, slot = batch["x_time"][:, -1, 0], batch["x_time"][:, -1, 1]
        time_part = (self.slot_embedding[slot] + self.weekday_embedding[weekday])[:, None].expand(-1, tokens, -1)
        node_part = self.node_embedding.expand(batch_size, -1, -1)
        embedded = self.fusion(torch.cat([history_part, time_part, node_part], dim=-1))
        hidden = self.gpt2(inputs_embeds=embedded, attention_mask=self._causal_mask(tokens, embedded.device),
                           use_cache=False).last_hidden_state
        future = self.head(hidden).reshape(batch_size, tokens, self.shape.horizon, -1).transpose(1, 2)
        forecast = unpatchify(future, patch, channels, *self.padded)[..., :height, :width]
        return {"forecast": forecast}
