"""What the server imports is installed by `scripts/serve`: its runtime dependencies (and theirs), not the test
extras. Once, the shared-cache purger imported httpx, which only the tests installed: `scripts/serve` from a clean
clone could not start."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("geoserver", "layers", "tiles")


def _runtime_distributions() -> set[str]:
    """The project's runtime requirements with their extras, and everything they require in turn."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = [Requirement(text) for text in project["dependencies"]]
    found: set[str] = set()
    while wanted:
        requirement = wanted.pop()
        name = canonicalize_name(requirement.name)
        if name in found:
            continue
        found.add(name)
        for text in metadata.requires(requirement.name) or []:
            needed = Requirement(text)
            extras = [""] + sorted(requirement.extras)
            if needed.marker is None or any(needed.marker.evaluate({"extra": extra}) for extra in extras):
                wanted.append(needed)
    return found


def _imported_modules() -> dict[str, Path]:
    """Each top-level module the server's code imports (outside the standard library and its own rooms)."""
    found: dict[str, Path] = {}
    for room in ROOMS:
        for path in (ROOT / room).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in ROOMS:
                        found.setdefault(top, path)
    return found


def test_the_server_imports_only_what_its_runtime_dependencies_install() -> None:
    runtime = _runtime_distributions()
    providers = metadata.packages_distributions()
    imported = _imported_modules()
    assert {"fastapi", "psycopg", "shapely"} <= set(imported), sorted(imported)
    missing = {
        module: str(path.relative_to(ROOT))
        for module, path in imported.items()
        if not {canonicalize_name(d) for d in providers.get(module, [module])} & runtime
    }
    assert not missing, f"imported by the server but not installed by scripts/serve: {missing}"
