"""helpers/ is what a learner reads: it never imports course_tools, nor does any notebook."""

from __future__ import annotations

import ast
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLS = "course_tools"


def _called(call: ast.Call) -> str | None:
    return getattr(call.func, "attr", None) or getattr(call.func, "id", None)


def imports_of_tools(source: str) -> list[str]:
    """Returns the statements of ``source`` that import course_tools, at any depth (lazy ones too).

    ``import_module("course_tools...")`` and ``__import__`` count as imports.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Call) and _called(node) in ("import_module", "__import__"):
            names = [arg.value for arg in node.args if isinstance(arg, ast.Constant)]
        else:
            continue
        if any(str(name) == TOOLS or str(name).startswith(f"{TOOLS}.") for name in names):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_the_scan_finds_every_kind_of_import():
    source = (
        "import course_tools\n"
        "from course_tools import run\n"
        "def later():\n"
        "    from course_tools.classroom import grade\n"
        "    importlib.import_module('course_tools.fetch')\n"
        "import course_tools_not_this\n"
        "'a docstring that names course_tools is no import'\n"
    )
    assert [line.split(":")[0] for line in imports_of_tools(source)] == [
        "line 1",
        "line 2",
        "line 4",
        "line 5",
    ]


def test_no_helpers_module_imports_course_tools():
    modules = sorted((ROOT / "helpers").glob("*.py"))
    assert len(modules) > 10, "the scan must see the helpers package"
    found = {
        path.name: imports
        for path in modules
        if (imports := imports_of_tools(path.read_text(encoding="utf-8")))
    }
    assert not found, f"helpers/ must not depend on the teacher commands: {found}"


def test_no_notebook_mentions_course_tools_in_code():
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert len(notebooks) >= 8, "the scan must see the series"
    found = [
        f"{path.name} cell {index}"
        for path in notebooks
        for index, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"])
        if cell["cell_type"] == "code" and TOOLS in "".join(cell["source"])
    ]
    assert not found, f"notebooks import helpers only: {found}"
