"""The walls between the packages (docs/architecture.md, "Who may import whom").

``shared`` is what both sides stand on: it imports neither ``server`` nor ``client``.
``client`` runs on a player's machine without the server: it imports no ``server``.
``server`` imports no ``client``, except its command-line entry point, which registers
every command (the players' too). Every import counts, at the top of a module or inside
a function, read from the source without running it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

ENTRY_POINT = ROOT / "server" / "cli" / "__init__.py"


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def imported(path: Path) -> Iterator[tuple[int, str]]:
    """Every module ``path`` imports, with the line: absolute names only (the project
    has no relative imports; one would be refused below)."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                yield node.lineno, "." * node.level + (node.module or "")
            else:
                yield node.lineno, node.module or ""


def crossings(package: str, forbidden: tuple[str, ...],
              allowed: tuple[Path, ...] = ()) -> list[str]:
    found = []
    for path in modules(package):
        if path in allowed:
            continue
        for line, name in imported(path):
            top = name.split(".")[0]
            if top in forbidden or name.startswith("."):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return found


@pytest.mark.parametrize("package, forbidden, allowed", [
    ("shared", ("server", "client"), ()),
    ("client", ("server",), ()),
    ("server", ("client",), (ENTRY_POINT,)),
])
def test_no_package_imports_across_its_walls(package: str, forbidden: tuple[str, ...],
                                             allowed: tuple[Path, ...]) -> None:
    assert crossings(package, forbidden, allowed) == []


def test_the_check_sees_a_crossing() -> None:
    """The check itself can fail: the entry point does import ``client``."""
    assert any("client" in c for c in crossings("server", ("client",)))
    assert list(imported(ENTRY_POINT))
