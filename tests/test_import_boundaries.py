"""pipelines/ and catalog/ never import Prefect, directly or through anything they import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PURE_PACKAGES = ("pipelines", "catalog")


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", PURE_PACKAGES)
def test_no_prefect_import_statement(package: str) -> None:
    offenders = []
    for path in _modules(package):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] == "prefect"]
    assert not offenders, f"Prefect imported outside flows/: {offenders}"


def test_importing_every_pure_module_loads_no_prefect() -> None:
    modules = [
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for package in PURE_PACKAGES
        for path in _modules(package)
    ]
    # The diffusion renderer needs torch; it still must not pull Prefect in.
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    code += "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'prefect')\nprint(bad)\nassert not bad, bad\n"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_boundary_check_catches_a_violation(tmp_path: Path) -> None:
    """The AST check itself is live: it flags a planted import."""
    planted = tmp_path / "x.py"
    planted.write_text("from prefect import flow\n")
    tree = ast.parse(planted.read_text())
    found = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "prefect"]
    assert found
