"""The import contracts of setup.cfg hold, and would catch a reverse import or a cycle.

``make test`` runs ``lint-imports`` itself; these tests show that the contracts are not vacuous
(a copy of the packages with one forbidden import breaks them) and that the CPU side imports
without torch at run time, which a static contract cannot see for dynamic imports. The jobs of
:mod:`pipelines.jobs` neither print, exit nor parse arguments (an AST check, since no import
contract sees a ``print``).
"""

import ast
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from tests.helpers import BLOCK_TORCH

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("featurestore", "classifiers", "pipelines")
LINT = pathlib.Path(sys.executable).with_name("lint-imports")

def lint(cwd):
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, env=env, capture_output=True,
                          text=True, check=False)


def copy_tree(target):
    for name in PACKAGES:
        shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "setup.cfg", target / "setup.cfg")
    return target


def test_contracts_hold():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("module, line, broken", [
    ("featurestore/datasets/labels.py", "import classifiers.metrics", "One-way flow"),
    ("featurestore/media/decode.py", "import featurestore.store", "featurestore subpackages"),
    ("classifiers/metrics.py", "import featurestore.store", "arrays only"),
    ("classifiers/linear.py", "import torch", "torch only in classifiers.dcase_networks"),
    ("classifiers/input_checks.py", "import classifiers.fitting", "No import cycles"),
    ("pipelines/jobs/split_files.py", "import pipelines.commands.options", "commands above jobs"),
    ("pipelines/commands/extract.py", "import pipelines.commands.segments",
     "no command imports another command"),
])
def test_a_forbidden_import_breaks_a_contract(tmp_path, module, line, broken):
    tree = copy_tree(tmp_path)
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}\n")
    result = lint(tree)
    assert result.returncode != 0
    broken_lines = [text for text in result.stdout.splitlines() if "BROKEN" in text]
    assert any(broken in text for text in broken_lines), result.stdout


def test_cpu_side_imports_without_torch():
    modules = ["featurestore", "featurestore.store", "featurestore.datasets", "classifiers",
               "pipelines.commands.cli"]
    modules += [f"classifiers.{p.stem}" for p in (ROOT / "classifiers").glob("*.py")
                if p.stem != "__init__"]
    code = BLOCK_TORCH + "".join(f"import {m}\n" for m in modules)
    code += "import pipelines.commands.cli; pipelines.commands.cli.build_parser()\n"
    code += "assert 'torch' not in sys.modules\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr


def job_violations(source):
    """``[(line, what)]``: the prints, exits and argparse uses in a module's source."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = (node.func.id if isinstance(node.func, ast.Name) else
                    node.func.attr if isinstance(node.func, ast.Attribute) else None)
            if name in ("print", "exit", "quit", "_exit"):
                found.append((node.lineno, f"{name}()"))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.name for alias in node.names] + [getattr(node, "module", None) or ""]
            if any(name.split(".")[0] == "argparse" for name in names):
                found.append((node.lineno, "argparse"))
    return sorted(found)


@pytest.mark.parametrize("path", sorted((ROOT / "pipelines" / "jobs").glob("*.py")),
                         ids=lambda path: path.name)
def test_jobs_neither_print_exit_nor_parse_arguments(path):
    assert job_violations(path.read_text()) == []


def test_the_job_check_finds_each_violation():
    source = ("import argparse\nimport sys\n\ndef job():\n    print('done')\n"
              "    sys.exit(0)\n\ndef parse():\n    from argparse import Namespace\n")
    assert job_violations(source) == [(1, "argparse"), (5, "print()"), (6, "exit()"),
                                      (9, "argparse")]
