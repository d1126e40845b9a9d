"""House rules a newcomer can rely on: small modules and functions, and the rooms' one-way imports."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
SCRIPTS = [
    "scripts/demo-city",
    "scripts/record-responses",
    "scripts/serve-static",
    "scripts/lib/rangeserver.py",
    *(f"scripts/bench/{p.name}" for p in (ROOT / "scripts/bench").iterdir()),
]


def _sources() -> list[Path]:
    files = [p for room in ("geoserver", "layers", "tiles", "tests") for p in (ROOT / room).rglob("*.py")]
    files += [ROOT / s for s in SCRIPTS if (ROOT / s).is_file() and not s.endswith((".md", ".lua"))]
    return [p for p in files if "migrations" not in p.parts]


def _oversized(path: Path, name: str) -> list[str]:
    """What is too long in one source file, named `name` in the report."""
    text = path.read_text(encoding="utf-8")
    lines = len(text.splitlines())
    found = [f"{name}: {lines} lines"] if lines > MAX_MODULE_LINES else []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{name}:{node.lineno} {node.name}() is {length} lines")
    return found


def test_no_module_or_function_is_too_long_to_read() -> None:
    sources = _sources()
    assert len(sources) > 100
    problems = [problem for path in sources for problem in _oversized(path, str(path.relative_to(ROOT)))]
    assert not problems, "\n".join(problems)


def test_the_size_check_catches_a_long_function_and_module(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    long = tmp_path / "long.py"
    long.write_text(f"def long() -> None:\n{body}\n" + "\n" * MAX_MODULE_LINES)
    assert _oversized(long, "long.py") == ["long.py: 461 lines", "long.py:1 long() is 61 lines"]


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), "--no-cache", str(ROOT / "pyproject.toml")],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_rooms_import_only_one_way() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "backwards"),
    [
        ("layers/errors.py", "from geoserver import settings"),  # layers -> geoserver
        ("tiles/grids.py", "import geoserver.media"),  # tiles -> geoserver
        ("layers/catalogue/records.py", "from layers.queries import crs"),  # catalogue -> queries
        ("layers/queries/crs.py", "import fastapi"),  # HTTP below geoserver
    ],
)
def test_an_arrow_added_backwards_breaks_the_check(tmp_path: Path, module: str, backwards: str) -> None:
    for room in ("geoserver", "tiles", "layers"):
        shutil.copytree(ROOT / room, tmp_path / room, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{backwards}  # noqa\n", encoding="utf-8")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0 and "BROKEN" in result.stdout, result.stdout[-2000:]
