"""Arrows only point down: every import in the package (inside functions and ``TYPE_CHECKING`` blocks
too) keeps to the rule its package states, and no two packages or files import each other.

Each package's ``__init__.py`` docstring, and each top-level module's own docstring, states the rule
in a paragraph that begins ``Imports from stvfm:`` and names what it may import (a package, or a
single module of one); ``none`` for a leaf. The rule is read from there, so docs and test cannot drift.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

import stvfm

PACKAGE_ROOT = Path(stvfm.__file__).parent
RULE_HEAD = "Imports from stvfm:"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE_ROOT.rglob("*.py"))}


def unit_of(module: str) -> str:
    """The layer a module belongs to: its top-level package (``stvfm.data``), or a top-level module itself."""
    return ".".join(module.split(".")[:2])


def imported_modules(module: str) -> set[str]:
    """Every stvfm module ``module`` imports anywhere in its file, each resolved to the file it loads."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{module}: relative import (the rules read absolute names)"
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in MODULES else node.module
                     for alias in node.names]
        else:
            continue
        found |= {name for name in names if name == "stvfm" or name.startswith("stvfm.")}
    return found - {module}


def stated_rule(unit: str) -> set[str]:
    """What a layer's docstring says it may import."""
    docstring = ast.get_docstring(ast.parse(MODULES[unit].read_text())) or ""
    match = re.search(rf"^{RULE_HEAD}(.*?)(?:\n\s*\n|\Z)", docstring, flags=re.MULTILINE | re.DOTALL)
    assert match, f"{MODULES[unit]}: its docstring states no '{RULE_HEAD}' rule"
    assert "never" not in match.group(1), f"{unit}: a rule names only what may be imported"
    allowed = set(re.findall(r"stvfm(?:\.\w+)+|stvfm\b", match.group(1)))
    assert allowed or match.group(1).strip().rstrip(".") == "none", f"{unit}: rule names no module and is not 'none'"
    return allowed


UNITS = sorted({unit_of(module) for module in MODULES})
IMPORTS = {module: imported_modules(module) for module in MODULES}


def allowed_by(rule: set[str], target: str) -> bool:
    return any(target == entry or target.startswith(f"{entry}.") for entry in rule)


@pytest.mark.parametrize("unit", UNITS)
def test_every_import_keeps_to_its_package_rule(unit):
    rule = stated_rule(unit)
    assert not any(unit_of(entry) == unit for entry in rule), f"{unit}: its rule names itself"
    broken = sorted(f"{module} imports {target}" for module, targets in IMPORTS.items() if unit_of(module) == unit
                    for target in targets if unit_of(target) != unit and not allowed_by(rule, target))
    assert not broken, f"{unit} may import only {sorted(rule)}:\n" + "\n".join(broken)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_cycle_between_packages():
    edges = defaultdict(set)
    for module, targets in IMPORTS.items():
        edges[unit_of(module)] |= {unit_of(target) for target in targets} - {unit_of(module)}
    assert not cycles(edges), cycles(edges)


def test_no_cycle_between_files():
    assert not cycles(IMPORTS), cycles(IMPORTS)


def test_the_checks_see_lazy_and_type_checking_imports():
    """The walk reaches imports inside functions and ``if TYPE_CHECKING:`` blocks, and the cycle search finds one."""
    assert "stvfm.export" in IMPORTS["stvfm"]  # stvfm.load imports it inside __getattr__
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
