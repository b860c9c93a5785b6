"""What the machine a run is on can do: its CPU's name and flags, the vector units torch uses.

Read in one place because results and speeds are recorded beside it, and because whether bf16
is worth using depends on it (native on AVX512-BF16 or AMX CPUs, emulated ~50x slower on AVX2).

Imports from stvfm: ``stvfm.version``.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from stvfm.version import __version__

#: CPU flags of a native bf16 matmul (AVX512-BF16, AMX); without them torch emulates bf16.
NATIVE_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
#: oneDNN ISA caps (``ONEDNN_MAX_CPU_ISA``) below AVX512-BF16: with one set, oneDNN emulates bf16 like an AVX2 host.
ISA_CAPS_WITHOUT_BF16 = frozenset({"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI"})


def _cpuinfo_field(name: str) -> str | None:
    """The first ``name : value`` line of /proc/cpuinfo (Linux); None elsewhere."""
    try:
        with open("/proc/cpuinfo") as handle:
            return next((line.partition(":")[2].strip() for line in handle if line.split(":")[0].strip() == name), None)
    except OSError:
        return None


def cpu_model() -> str:
    return _cpuinfo_field("model name") or platform.processor() or platform.machine() or "unknown"


def cpu_flags() -> set[str]:
    """The CPU's feature flags; empty where the system does not list them."""
    return set((_cpuinfo_field("flags") or "").split())


def native_bf16_cpu() -> bool:
    """False also where the vector units are capped below AVX-512 (``ATEN_CPU_CAPABILITY=avx2``,
    ``ONEDNN_MAX_CPU_ISA=AVX2``): that is how an AVX-512 host times an AVX2 host's fp32 path."""
    capped = (not torch.backends.cpu.get_cpu_capability().startswith("AVX512")
              or os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in ISA_CAPS_WITHOUT_BF16)
    return bool(NATIVE_BF16_CPU_FLAGS & cpu_flags()) and not capped


def describe() -> dict[str, Any]:
    """Where a result was measured: speeds and wall times mean little without it."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    # the 15-minute load average when the run ended: above the run's own threads, it shared the cores
    load = round(os.getloadavg()[2], 2) if hasattr(os, "getloadavg") else None
    # the vector units torch dispatches to (AVX2 or AVX512): one CPU name covers hosts whose speeds differ 2x
    return {"cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cores": os.cpu_count(),
            "gpu": gpu, "torch": torch.__version__, "load_15min": load, "stvfm": code_version()}


@functools.cache
def code_version() -> str:
    """The package version and, in a git checkout, its commit ("0.1.0+a60d0e0", "-dirty" with uncommitted
    changes): a record's figures are repeatable at that code, since e.g. a layer's random stream may change."""
    package = Path(__file__).parent
    if "site-packages" in package.parts:
        return __version__  # an installed wheel: any git repository around it is not its source
    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=7"], cwd=package,
                                capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__  # not a git checkout, or no git
    return f"{__version__}+{commit}" if commit else __version__
