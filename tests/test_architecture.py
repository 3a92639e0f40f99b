"""The shape of the code, checked: layers (import-linter), style (ruff), sizes, private names, the public API.

These fail when a change breaks a rule of the project's layout, not when behaviour changes.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import ingester
from support.corpus import REPO

BIN = Path(sys.executable).parent
SOURCES = sorted((REPO / "ingester").rglob("*.py"))
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400
MAX_TOP_LEVEL_MODULES = 8


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_import_contracts_hold():
    """The layers, the writer's and the watcher's ignorance, no cycles: pyproject.toml's contracts."""
    result = run(str(BIN / "lint-imports"), "--no-cache")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


@pytest.mark.parametrize("check", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_is_clean(check):
    result = run(str(BIN / "ruff"), *check, ".")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_no_function_or_module_is_too_long():
    too_long = []
    for path in SOURCES:
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(REPO)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {lines} lines")
    assert not too_long


def test_few_modules_directly_in_the_package():
    modules = [p.name for p in (REPO / "ingester").glob("*.py")]
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, modules


def test_no_private_name_is_imported_from_another_module():
    """What a module needs from another is public (tests included)."""
    found = []
    for path in [*SOURCES, *sorted((REPO / "tests").rglob("*.py")), *sorted((REPO / "scripts").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module != "__future__":
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if private and (node.module.startswith(("ingester", "schemas", "support")) or node.level):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.module} {private}")
    assert not found


def test_the_public_api_is_what_the_readme_promises():
    assert ingester.__all__ == [
        "__version__", "validate_file", "ingest_paths", "BatchOptions", "Summary", "open_target", "Ledger",
        "Settings", "load_settings", "Outcome",
    ]  # fmt: skip
    for name in ingester.__all__:
        assert getattr(ingester, name) is not None
    assert callable(ingester.validate_file) and callable(ingester.ingest_paths)


def test_importing_the_package_imports_no_stage():
    code = "import sys, ingester; print(sorted(m for m in sys.modules if m.startswith('ingester')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['ingester']"
