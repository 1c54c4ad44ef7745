"""The import graph of the package, read from its source (ast), for layering tests."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE = "chimeway_lite"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE


def module_path(name: str) -> Path | None:
    """The file of a module of the package (``chimeway_lite.machine`` -> its __init__)."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = ROOT.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def modules() -> list[str]:
    """Every module of the package, dotted."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found.append(".".join(parts))
    return found


@cache
def imports_of(name: str) -> frozenset[str]:
    """The absolute names a module imports (relative imports resolved; ``from x import y``
    gives ``x.y`` when that is a module of the package, else ``x``)."""
    path = module_path(name)
    assert path is not None, name
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if module_path(sub) is not None else target)
    return frozenset(found)


def closure(start: str) -> set[str]:
    """``start`` and every module of the package it imports, directly or not."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen or module_path(name) is None:
            continue
        seen.add(name)
        todo.extend(imports_of(name))
    return seen
