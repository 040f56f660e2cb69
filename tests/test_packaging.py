"""Packaging: every import is declared (and nothing unused is), extras hold what only the bench/builder need,
the test command installs chromium or says how, and a skipped test fails scripts/test.sh."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=~! ;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def _imports(folders: list[str]) -> dict[str, set[str]]:
    """Top-level third-party module -> files importing it."""
    local = {"assistant", "ingest", "evals", "prompts"}
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top not in local and top not in sys.stdlib_module_names:
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_import_is_declared_and_nothing_unused_is() -> None:
    project = PYPROJECT["project"]
    core = _names(project["dependencies"])
    extras = {name: _names(reqs) for name, reqs in project["optional-dependencies"].items()}
    dists = packages_distributions()
    missing = []
    for module, files in sorted(_imports(["assistant", "ingest", "evals"]).items()):
        owners = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
        if not owners & (core | extras["bench"]):
            missing.append(f"{module} ({', '.join(sorted(owners))}) imported by {', '.join(sorted(files))}")
        elif not owners & core:
            # bench-only modules, and the one fit-time module (`fit-ranker --trees`, imported inside the function)
            assert all(f.startswith("evals/bench") or (module, f) == ("lightgbm", "evals/fit.py") for f in files), (
                module,
                files,
            )
    assert not missing, missing
    assert not {"bm25s", "langchain"} & (core | set().union(*extras.values()))
    assert {"langchain-chroma", "langchain-text-splitters", "psutil"} <= extras["bench"] and not (
        {"langchain-chroma", "langchain-text-splitters", "psutil", "reportlab"} & core
    )
    assert "reportlab" in extras["build"]
    assert "[dev,bench,build]" in (ROOT / "scripts" / "install.sh").read_text()


def test_missing_chromium_stops_the_test_command_with_the_install_command(tmp_path: Path) -> None:
    env = {**os.environ, "CP_CHROMIUM": str(tmp_path / "no-chromium")}
    script = str(ROOT / "scripts" / "ensure_chromium.sh")
    # Not root: nothing can be installed, so it must stop and say how.
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash", script]
    done = subprocess.run(nobody, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "apt-get install -y chromium" in done.stderr and str(tmp_path / "no-chromium") in done.stderr
    # Present (any executable stands in for it): nothing to do.
    ok = subprocess.run(nobody, env={**env, "CP_CHROMIUM": "/bin/sh"}, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr


def test_a_skipped_test_fails_the_test_command(tmp_path: Path) -> None:
    probe = tmp_path / "test_probe.py"
    probe.write_text("import pytest\n\n\ndef test_needs_a_service():\n    pytest.skip('service X is not running')\n")
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider", str(probe)]
    env = {k: v for k, v in os.environ.items() if k != "CP_TEST_FAIL_ON_SKIP"}  # scripts/test.sh sets it
    env["PYTHONPATH"] = str(ROOT / "tests")
    lenient = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert lenient.returncode == 0, lenient.stdout + lenient.stderr
    strict = subprocess.run(
        argv, env={**env, "CP_TEST_FAIL_ON_SKIP": "1"}, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert strict.returncode == 1 and "service X is not running" in strict.stderr
