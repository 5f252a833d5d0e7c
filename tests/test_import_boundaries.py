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


def imports_of(paths: list[Path], root: Path, package: str = "prefect") -> list[str]:
    """'<file>: <module>' for every import statement of a package (or its submodules) in these files."""
    offenders = []
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [
                f"{path.relative_to(root)}: {n}" for n in names if n == package or n.startswith(package + ".")
            ]
    return offenders


@pytest.mark.parametrize("package", PURE_PACKAGES)
def test_no_prefect_import_statement(package: str) -> None:
    offenders = imports_of(_modules(package), ROOT)
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
    """The check the real test runs flags planted imports in every form, and only those."""
    package = tmp_path / "pipelines"
    (package / "deep").mkdir(parents=True)
    (package / "a.py").write_text("from prefect import flow\n")
    (package / "deep" / "b.py").write_text("def f():\n    import prefect.tasks as t\n    return t\n")
    (package / "c.py").write_text("import prefectx\nfrom .prefect import y\nimport os\n")
    found = imports_of(sorted(package.rglob("*.py")), tmp_path)
    assert found == ["pipelines/a.py: prefect", "pipelines/deep/b.py: prefect.tasks"]


def test_test_generators_stay_off_the_production_path() -> None:
    """pipelines/testing is for tests, benchmarks and the demo catalogue, never a pipeline step."""
    production = [
        path
        for package in ("catalog", "pipelines", "flows")
        for path in _modules(package)
        if "testing" not in path.relative_to(ROOT).parts
    ]
    found = imports_of(production, ROOT, package="pipelines.testing")
    assert found == ["flows/demo_catalog.py: pipelines.testing.flatlays"]
