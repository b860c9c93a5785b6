"""No import cycle in the package: every module imports on its own in a fresh interpreter.

One interpreter loads the heavy third-party libraries once (torch, lightning, transformers'
model classes, onnx, ...) and forks a child per module; each child starts with no ``stvfm``
module loaded, so importing one there follows exactly the chain a fresh interpreter would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import stvfm

PACKAGE_ROOT = Path(stvfm.__file__).parent

IMPORT_EACH_IN_A_FORK = """
import importlib, os, sys, traceback
# Shared by every child, so that only stvfm's own imports are under test (and each is fast).
import lightning, matplotlib, numpy, onnx, rich, safetensors.torch, torch, torchmetrics, typer, yaml  # noqa: F401
from transformers import CLIPVisionModel, Dinov2Model, GPT2Model, VideoMAEModel, ViTModel  # noqa: F401
assert not any(name == "stvfm" or name.startswith("stvfm.") for name in sys.modules)
failed = []
for module in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(module)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    if os.waitpid(pid, 0)[1]:
        failed.append(module)
print("failed:", " ".join(failed))
sys.exit(1 if failed else 0)
"""


def package_modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork to stay fast")
def test_every_module_imports_on_its_own():
    modules = package_modules()
    assert "stvfm.backbones.registry" in modules and "stvfm.models.recurrent" in modules
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE_ROOT.parent), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", IMPORT_EACH_IN_A_FORK, *modules], capture_output=True,
                            text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-6000:]
