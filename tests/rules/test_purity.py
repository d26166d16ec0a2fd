"""``rules/`` stays pure: standard library only, and it never reads the clock."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import rules

RULES_DIR = Path(rules.__file__).parent
MODULES = sorted(f"rules.{m.name}" for m in pkgutil.iter_modules([str(RULES_DIR)]))
FORBIDDEN_PACKAGES = ("flask", "sqlalchemy", "requests", "marshmallow", "connector", "adapters")
CLOCK_CALLS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "time_ns"),
    ("time", "monotonic"),
    ("time", "perf_counter"),
    ("time", "localtime"),
    ("time", "gmtime"),
}


def test_there_are_rules_modules() -> None:
    assert "rules.decide" in MODULES
    assert len(MODULES) >= 10


def test_importing_rules_loads_no_forbidden_package() -> None:
    # A fresh interpreter, so nothing the test session imported can hide a dependency.
    code = (
        "import importlib, json, sys\n"
        f"for m in {MODULES!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded = json.loads(out)
    bad = [m for m in loaded if m.split(".")[0] in FORBIDDEN_PACKAGES]
    assert bad == []


def _imports_and_clock_calls(path: Path) -> tuple[set[str], list[str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported: set[str] = set()
    clock: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
            if (name, node.func.attr) in CLOCK_CALLS:
                clock.append(f"{path.name}:{node.lineno} {name}.{node.func.attr}()")
    return imported, clock


def test_every_rules_import_is_standard_library_or_rules() -> None:
    allowed = set(sys.stdlib_module_names) | {"rules", "__future__"}
    for path in sorted(RULES_DIR.glob("*.py")):
        imported, _ = _imports_and_clock_calls(path)
        assert imported <= allowed, f"{path.name} imports {sorted(imported - allowed)}"


def test_no_rules_module_reads_the_clock() -> None:
    found: list[str] = []
    for path in sorted(RULES_DIR.glob("*.py")):
        found += _imports_and_clock_calls(path)[1]
    assert found == []


def test_the_checker_catches_a_clock_read(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import datetime\nimport flask\nx = datetime.datetime.now()\n")
    imported, clock = _imports_and_clock_calls(sample)
    assert "flask" in imported
    assert clock == ["sample.py:3 datetime.now()"]
