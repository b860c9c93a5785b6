"""One attention rule (``stvfm.attention``): the eager path computes what SDPA computes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import stvfm.attention as attention_rule
from stvfm.attention import attention
from stvfm.models.stvfm.cross_prompt import CrossPromptAttention


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_eager_attention_equals_sdpa_forward_and_backward(dtype):
    torch.manual_seed(0)
    parts = [torch.randn(3, 4, 9, 16, dtype=dtype, requires_grad=True) for _ in range(3)]
    assert attention_rule.eager_attention_wins(parts[0], parts[1])
    eager = attention(*parts)
    eager.float().sum().backward()
    eager_grads = [p.grad.clone() for p in parts]
    for p in parts:
        p.grad = None
    fused = F.scaled_dot_product_attention(*parts)
    fused.float().sum().backward()
    tolerance = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 2e-2}
    torch.testing.assert_close(eager, fused, **tolerance)
    for mine, theirs in zip(eager_grads, [p.grad for p in parts], strict=True):
        torch.testing.assert_close(mine, theirs, **tolerance)


def test_cross_prompt_attention_gives_the_same_result_by_either_kernel(monkeypatch):
    torch.manual_seed(0)
    layer = CrossPromptAttention(dim=32, heads=4)
    tokens, prompts = torch.randn(5, 12, 32), torch.randn(5, 12, 32)
    eager = layer(tokens, prompts)
    monkeypatch.setattr(attention_rule, "EAGER_ATTENTION_MAX_TOKENS", 23)  # 24 keys now count as long
    assert not attention_rule.eager_attention_wins(tokens, torch.cat([tokens, prompts], dim=1))
    torch.testing.assert_close(eager, layer(tokens, prompts), rtol=1e-5, atol=1e-5)
