"""ST-VFM (registered as ``stvfm``) and its building blocks."""

from stvfm.models.stvfm.cross_prompt import CrossPromptAttention, CrossPromptBlock
from stvfm.models.stvfm.decoder import FrameMLPHead, TemporalDecoder
from stvfm.models.stvfm.model import STVFM, VARIANTS, STVFMConfig, flow_target, flow_target_observed, st_flow
from stvfm.models.stvfm.token_adapter import TemporalTokenAdapter

__all__ = [
    "STVFM", "STVFMConfig", "VARIANTS", "CrossPromptAttention", "CrossPromptBlock", "FrameMLPHead",
    "TemporalDecoder", "TemporalTokenAdapter", "flow_target", "flow_target_observed", "st_flow",
]
