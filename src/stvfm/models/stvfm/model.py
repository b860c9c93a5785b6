"""ST-VFM: spatio-temporal forecasting by reprogramming a frozen vision foundation model.

Pipeline (paper Fig. 1): ST frames and their ST flow (first difference in time) each go
through a ``TemporalTokenAdapter``; one call of the frozen VFM encodes both branches;
``CrossPromptBlock`` layers let the branches prompt each other; a ``TemporalDecoder`` per
branch forecasts the future frames (ST) and the future flow (auxiliary loss only).
The ablations of the paper's Table 3 are options of this one model (``variant``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from stvfm.errors import ConfigError
from stvfm.models.base import Forecaster, ModelConfig, observed_mean
from stvfm.models.layers import FullPrecisionLinear
from stvfm.models.patching import pad_grid, padded_size, patchify, unpatchify
from stvfm.models.registry import register_model
from stvfm.models.stvfm.cross_prompt import CrossPromptBlock
from stvfm.models.stvfm.decoder import FrameMLPHead, TemporalDecoder
from stvfm.models.stvfm.token_adapter import TemporalTokenAdapter
from stvfm.shape import ForecastShape

if TYPE_CHECKING:  # stvfm.backbones loads only when a model is built
    from stvfm.backbones import VisionBackbone


@dataclass(frozen=True)
class VariantParts:
    """Which components a variant has; the rows of the paper's Table 3."""

    temporal_tokens: bool  # D_T token adaptation + temporal Transformer decoder (else linear embedding + MLP head)
    temporal_encoder: bool  # temporal context encoder in the token adapter
    adapters: bool  # bottleneck adapters trained inside the frozen VFM
    flow: bool  # ST-flow branch, cross-prompt coordination and the flow loss


VARIANTS: dict[str, VariantParts] = {
    "simple": VariantParts(temporal_tokens=False, temporal_encoder=False, adapters=False, flow=False),  # #1
    "token-adapt": VariantParts(temporal_tokens=True, temporal_encoder=False, adapters=False, flow=False),  # #2
    "temporal-encoder": VariantParts(temporal_tokens=True, temporal_encoder=True, adapters=False, flow=False),  # #3
    "adapter": VariantParts(temporal_tokens=True, temporal_encoder=True, adapters=True, flow=False),  # #4
    "full": VariantParts(temporal_tokens=True, temporal_encoder=True, adapters=True, flow=True),
}


@dataclass
class STVFMConfig(ModelConfig):
    """Options of ST-VFM; defaults follow the paper and NOTES.md section 2."""

    backbone: str = "dinov2-s"  # backbone name in stvfm.backbones' registry
    weights: str = "default"  # weights for create_backbone: "default", "random", a hub id or a local path
    variant: str = "full"  # one of VARIANTS: "full" | "simple" | "token-adapt" | "temporal-encoder" | "adapter"
    patch: int = 2  # spatial patch size P_s; grids it does not divide are padded and cropped back
    temporal_dim: int = 128  # D_T, width of the temporal encoder and decoders
    temporal_heads: int = 8  # attention heads of the temporal Transformers
    encoder_layers: int = 3  # layers of the temporal context encoder (per branch)
    decoder_layers: int = 3  # layers of each branch's temporal decoder
    cross_prompt_layers: int = 1  # bilateral cross-prompt blocks (full variant only)
    prompt_tokens: int = 0  # L_p: 0 = every token of the other branch's frame; >0 = average-pool to L_p prompts
    adapter_ratio: float = 0.25  # adapter bottleneck width / VFM width
    flow_weight: float = 1.0  # lambda of L = L_ST + lambda * L_flow (eq. 11)
    train_backbone: bool = False  # train the VFM's own weights too (the "pretraining" experiment's control)
    dropout: float = 0.1  # dropout of the trained parts (the frozen VFM runs without)
    # Initial std of the weekday/slot embeddings. At PyTorch's 1.0 they drown each location's data in the
    # temporal Transformers' input and the forecast stays flat in space for the first ~300 steps (docs/results).
    calendar_init_std: float = 0.02
    # Weekday/slot embeddings in the token adapter and decoders: our addition beyond the paper's equations,
    # so False lets ablations isolate the paper's own components (the model then never reads the time features).
    calendar: bool = True
    # Beyond the paper: LSTNet's autoregressive highway, a linear map from each cell's P history values to its Q
    # future values added to the forecast. Zero-initialised, so training starts from the paper's model; it gives
    # the last frames a path around the frozen ViT (the 60-day results show ST-VFM weakest at step 1: docs/results).
    highway: bool = False
    backbone_overrides: dict = field(default_factory=dict)  # extra create_backbone options (tiny test backbones)

    #: Defaults that have changed, as records that predate the full option record assume them (see recorded_options).
    FORMER_DEFAULTS: ClassVar[dict[str, Any]] = {"calendar_init_std": 1.0}
    #: Options added after runs were recorded: at their default they leave ledger record names as they were.
    ADDED_LATER: ClassVar[tuple[str, ...]] = ("highway",)

    positive = ("temporal_dim", "temporal_heads", "decoder_layers", "adapter_ratio")
    non_negative = ("encoder_layers", "cross_prompt_layers")
    fractions = ("dropout",)

    def validate(self) -> None:
        super().validate()
        if self.variant not in VARIANTS:
            raise ConfigError(f"unknown ST-VFM variant {self.variant!r}; known: {', '.join(VARIANTS)}")
        if self.temporal_dim % self.temporal_heads:
            raise ConfigError(f"temporal_dim {self.temporal_dim} is not divisible by temporal_heads {self.temporal_heads}")
        if self.patch < 1 or self.prompt_tokens < 0 or self.flow_weight < 0 or self.calendar_init_std < 0:
            raise ConfigError("patch must be >= 1, prompt_tokens >= 0, flow_weight >= 0 and calendar_init_std >= 0")


def st_flow(frames: torch.Tensor) -> torch.Tensor:
    """ST flow of (B, T, ...) frames: first difference along time, the first frame's flow is 0 (eq. 4).
    Written as a subtraction rather than ``Tensor.diff`` (the same numbers), which ONNX cannot express."""
    return torch.cat([torch.zeros_like(frames[:, :1]), frames[:, 1:] - frames[:, :-1]], dim=1)


def flow_target(history: torch.Tensor, future: torch.Tensor) -> torch.Tensor:
    """Future flow y[t] - y[t-1], whose first step uses the last history frame."""
    return future.diff(dim=1, prepend=history[:, -1:])


def flow_target_observed(history_observed: torch.Tensor, future_observed: torch.Tensor) -> torch.Tensor:
    """Where the flow target is known: a difference is observed only where both of its frames are."""
    frames = torch.cat([history_observed[:, -1:], future_observed], dim=1)
    return frames[:, 1:] & frames[:, :-1]


def attention_heads(width: int) -> int:
    """Heads of the cross-prompt attention: ViT convention of 64-wide heads (6 for ViT-S)."""
    return width // 64 if width % 64 == 0 and width >= 64 else 1


@register_model("stvfm", STVFMConfig)
class STVFM(Forecaster):
    """ST-VFM: frozen vision foundation model reprogrammed with ST + flow branches."""

    def __init__(self, shape: ForecastShape, config: STVFMConfig, backbone: VisionBackbone | None = None):
        super().__init__(shape, config)
        self.parts = parts = VARIANTS[config.variant]
        if backbone is None:
            from stvfm.backbones import create_backbone

            backbone = create_backbone(config.backbone, config.weights, **config.backbone_overrides)
        # frozen unless told otherwise, and in eval mode for good: VisionBackbone.train() keeps its dropout off
        self.backbone = backbone.requires_grad_(config.train_backbone).eval()
        if parts.adapters:
            from stvfm.backbones import add_adapters

            add_adapters(backbone, config.adapter_ratio)  # trainable, kept by the backbone as .adapters

        self.padded_height, self.padded_width = padded_size(shape.height, shape.width, config.patch)
        num_tokens = (self.padded_height // config.patch) * (self.padded_width // config.patch)
        patch_features = shape.channels * config.patch ** 2
        width = backbone.width
        self.branches = ("st", "flow") if parts.flow else ("st",)

        def token_adapter() -> TemporalTokenAdapter:
            return TemporalTokenAdapter(
                patch_features, num_tokens, shape.history, width,
                temporal_dim=config.temporal_dim if parts.temporal_tokens else None,
                encoder_layers=config.encoder_layers if parts.temporal_encoder else 0,
                heads=config.temporal_heads, dropout=config.dropout, slots_per_day=shape.slots_per_day,
                video=backbone.is_video, calendar_init_std=config.calendar_init_std, calendar=config.calendar,
            )

        def decoder() -> nn.Module:
            if not parts.temporal_tokens:
                return FrameMLPHead(width, config.temporal_dim, patch_features, shape.history, shape.horizon, config.dropout)
            return TemporalDecoder(
                width, config.temporal_dim, patch_features, shape.history, shape.horizon,
                config.temporal_heads, config.decoder_layers, config.dropout, shape.slots_per_day,
                config.calendar_init_std, config.calendar,
            )

        self.token_adapters = nn.ModuleDict({branch: token_adapter() for branch in self.branches})
        self.cross_prompts = nn.ModuleList(
            CrossPromptBlock(width, attention_heads(width), config.prompt_tokens, config.dropout)
            for _ in range(config.cross_prompt_layers if parts.flow else 0)
        )
        self.decoders = nn.ModuleDict({branch: decoder() for branch in self.branches})
        self.highway = FullPrecisionLinear(shape.history, shape.horizon) if config.highway else None
        if self.highway is not None:
            nn.init.zeros_(self.highway.weight)
            nn.init.zeros_(self.highway.bias)

    def describe(self) -> dict[str, Any]:
        return {"backbone": self.backbone.name, "weights": self.backbone.weights.to_dict(),
                "variant": self.config.variant}

    @property
    def adapters(self) -> nn.ModuleList | None:
        """The trainable adapters inside the VFM (variants adapter and full), else None."""
        return getattr(self.backbone, "adapters", None)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Frozen VFM over (N, P, N_s, D) tokens: frames into the batch axis, or, for a video
        backbone, into the sequence axis."""
        frames_axis = 1 if self.backbone.is_video else 0
        return self.backbone(tokens.flatten(frames_axis, frames_axis + 1)).reshape(tokens.shape)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        patch, shape = self.config.patch, self.shape
        frames = pad_grid(batch["x"], patch, shape.scaled_zero)
        inputs = {"st": frames, "flow": st_flow(frames)} if self.parts.flow else {"st": frames}
        tokens = [
            self.token_adapters[branch](patchify(branch_frames, patch), batch["x_time"])
            for branch, branch_frames in inputs.items()
        ]
        # both branches through the VFM in one call: one pass over its weights instead of two
        features = self.encode(torch.cat(tokens) if len(tokens) > 1 else tokens[0]).chunk(len(self.branches))
        if self.cross_prompts:
            batch_size, steps, locations, width = features[0].shape
            st, flow = (branch_features.reshape(batch_size * steps, locations, width) for branch_features in features)
            for block in self.cross_prompts:
                st, flow = block(st, flow)
            features = (st.view(features[0].shape), flow.view(features[1].shape))
        outputs = {}
        for branch, branch_features in zip(self.branches, features, strict=True):
            patches = self.decoders[branch](branch_features, batch["x_time"], batch["y_time"])
            forecast = unpatchify(patches, patch, shape.channels, self.padded_height, self.padded_width)
            outputs["forecast" if branch == "st" else "flow_forecast"] = forecast[..., : shape.height, : shape.width]
        if self.highway is not None:  # (B, P, C, H, W) -> each cell's P values -> its Q future values
            history = batch["x"].float().movedim(1, -1)
            outputs["forecast"] = outputs["forecast"] + self.highway(history).movedim(-1, 1)
        return outputs

    def loss(self, batch: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """MSE of the forecast, plus ``flow_weight`` x MSE of the flow forecast (eq. 11) when there is one;
        both over observed targets only (a flow target where both of its frames are observed)."""
        terms = super().loss(batch, outputs)
        if "flow_forecast" not in outputs:
            return terms
        observed = batch.get("y_observed")
        if observed is not None:
            observed = flow_target_observed(batch["x_observed"], observed)
        squared = (outputs["flow_forecast"].float() - flow_target(batch["x"], batch["y"]).float()) ** 2
        mse_flow = observed_mean(squared, observed)
        return {"loss": terms["mse_st"] + self.config.flow_weight * mse_flow, "mse_st": terms["mse_st"], "mse_flow": mse_flow}

    def parameter_counts(self) -> tuple[int, int]:
        """(trainable, frozen) parameter counts; adapters count as trainable, the VFM as frozen."""
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in self.parameters() if not p.requires_grad)
        return trainable, frozen
