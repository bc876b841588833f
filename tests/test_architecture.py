"""The house's rules (docs/architecture.md), checked on the source: no import circle, SQL only in catalog/,
no audit record written outside the services, and each room importing only what it may."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "facesearch"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The modules a file imports when it is loaded (imports inside functions and TYPE_CHECKING blocks,
    which run later or never, are left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If) and not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)

    visit(tree.body)
    return found


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py") if "migrations" not in path.parts}
GRAPH = {name: {m for m in imports(path) if m in MODULES and m != name} for name, path in MODULES.items()}


def test_there_is_no_import_circle() -> None:
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def walk(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(GRAPH[node]):
            if state.get(target) == 1:
                cycles.append([*trail[trail.index(target) :], target] if target in trail else [node, target])
            elif target not in state:
                walk(target, [*trail, target])
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            walk(name, [name])
    # A package's __init__ importing its own submodules to register them is not a circle of behaviour.
    real = [
        c for c in cycles if not any(a.startswith(b + ".") or b.startswith(a + ".") for a, b in itertools.pairwise(c))
    ]
    assert real == [], "\n".join(" -> ".join(c) for c in real)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_sql_lives_in_the_catalog_only(name: str) -> None:
    if name.startswith("facesearch.catalog"):
        return
    text = MODULES[name].read_text(encoding="utf-8")
    assert "sqlalchemy" not in imports(MODULES[name]) and "import sqlalchemy" not in text
    assert not any(m.startswith("sqlalchemy") for m in imports(MODULES[name])), name
    assert ".session()" not in text, f"{name} opens a database session"


INTERFACES = ("facesearch.cli", "facesearch.api", "facesearch.web")


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith(INTERFACES)))
def test_interfaces_write_no_audit_record(name: str) -> None:
    text = MODULES[name].read_text(encoding="utf-8")
    for call in (".append_in(", "audit.append(", ".committed("):
        assert call not in text, f"{name} writes to the audit log itself ({call})"


@pytest.mark.parametrize(
    ("room", "forbidden"),
    [
        ("facesearch.vision", ("facesearch.catalog", "facesearch.index", "facesearch.governance", "facesearch.api")),
        ("facesearch.index", ("facesearch.catalog", "facesearch.governance", "facesearch.api", "facesearch.cli")),
        ("facesearch.catalog", ("facesearch.vision", "facesearch.index", "facesearch.governance", "facesearch.search")),
        ("facesearch.governance", ("facesearch.api", "facesearch.cli", "facesearch.engine")),
        ("facesearch.search", ("facesearch.api", "facesearch.cli", "facesearch.engine")),
        ("facesearch.ingest", ("facesearch.api", "facesearch.cli", "facesearch.engine")),
        # The workbench calls services: never storage, and never the command line.
        ("facesearch.web", ("facesearch.catalog", "facesearch.index", "facesearch.cli")),
    ],
)
def test_each_room_imports_only_what_it_may(room: str, forbidden: tuple[str, ...]) -> None:
    wrong = sorted(
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if name.startswith(room)
        for target in targets
        if target.startswith(forbidden)
    )
    assert wrong == []
