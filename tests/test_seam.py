"""statecache touches Django's private migration internals in one module (compat.py), and its
modules import each other without a cycle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import statecache

PACKAGE = Path(statecache.__file__).parent
SEAM = PACKAGE / "compat.py"

# Private (undocumented) names of django.db.migrations and of the registries it builds.
PRIVATE = re.compile(
    r"\b(?:StateApps|AppConfigStub|get_related_models_recursive|get_related_models_tuples"
    r"|get_references|resolve_relation|field_references|_find_reload_model|_reload"
    r"|is_delayed|_pending_operations|_constructor_args"
    r"|_create_project_state|_migrate_all_forwards|_migrate_all_backwards)\b"
    # Registry internals (`app_configs` alone is also the system checks' public argument).
    r"|\.(?:real_models|all_models|app_configs)\b"
    # A state's cached registry, reached through the instance dictionary.
    r"|__dict__\s*(?:\.get|\.pop|\[)\s*\(?\s*[\"']apps[\"']"
    # The management command, reached through the executor's progress callback.
    r"|progress_callback\s*,\s*[\"']__self__[\"']|progress_callback\.__self__"
)


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_private_django_name_outside_the_seam():
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}"
        for path in modules()
        if path != SEAM
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if PRIVATE.search(line)
    ]
    assert found == []


def test_the_seam_holds_what_the_grep_looks_for():
    """The pattern is not blind: it finds the names in the seam itself."""
    text = SEAM.read_text()
    for name in ("StateApps", "_find_reload_model", "_migrate_all_backwards", "apps.real_models"):
        assert PRIVATE.search(name) and name in text
    assert PRIVATE.search('state.__dict__.get("apps")')
    assert PRIVATE.search('getattr(executor.progress_callback, "__self__", None)')


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """The statecache modules `path` imports, at any depth of its code (function-level
    imports included)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("statecache")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            if not module.startswith("statecache"):
                continue
            found.add(module)
            for alias in node.names:  # `from . import codec` imports a module
                found.add(f"{module}.{alias.name}")
    return found


def import_graph() -> dict[str, set[str]]:
    names = {_module_name(path): path for path in modules()}
    return {
        name: {other for other in _imports(path) if other in names and other != name}
        for name, path in names.items()
    }


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for other in sorted(graph[node]):
            if state.get(other) == 1:
                return [*path[path.index(other) :], other]
            if other not in state:
                found = visit(other)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert "statecache.compat" in graph["statecache.executor"]  # the graph is read
    assert cycle(graph) is None


def test_a_cycle_is_found():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None
