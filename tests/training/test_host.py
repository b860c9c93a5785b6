"""Whether bf16 is native decides what `precision auto` trains in, so the rule is tested on every host."""

from __future__ import annotations

import re

import pytest
import torch

from stvfm import host


@pytest.mark.parametrize(("flags", "capability", "isa_cap", "native"), [
    ({"avx2", "avx512f", "avx512_bf16"}, "AVX512", None, True),
    ({"avx2", "amx_bf16"}, "AVX512", "ALL", True),
    ({"avx2", "avx512f"}, "AVX512", None, False),  # AVX-512 without its bf16 extension
    ({"avx2"}, "AVX2", None, False),
    # an AVX-512 BF16 host timing an AVX2 host's path: either cap makes bf16 emulated there too
    ({"avx2", "avx512f", "avx512_bf16"}, "AVX2", None, False),
    ({"avx2", "avx512f", "avx512_bf16"}, "AVX512", "avx2", False),
    ({"avx2", "avx512f", "avx512_bf16"}, "AVX512", "AVX512_CORE_BF16", True),
])
def test_native_bf16_follows_flags_and_isa_caps(monkeypatch, flags, capability, isa_cap, native):
    monkeypatch.setattr(host, "cpu_flags", lambda: flags)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    if isa_cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa_cap)
    assert host.native_bf16_cpu() is native


def test_every_record_names_the_code_that_made_it():
    from stvfm.version import __version__

    stamp = host.describe()["stvfm"]
    assert stamp == host.code_version() and stamp.startswith(__version__)
    # in this checkout, the commit too ("0.1.0+a60d0e0" or "...-dirty")
    assert re.fullmatch(re.escape(__version__) + r"(\+[0-9a-f]{7,}(-dirty)?)?", stamp)
