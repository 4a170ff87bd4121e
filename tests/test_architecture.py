"""The import contracts of setup.cfg hold, and would catch a reverse import or a cycle.

``make test`` runs ``lint-imports`` itself; these tests show that the contracts are not vacuous
(a copy of the packages with one forbidden import breaks them) and that the CPU side imports
without torch at run time, which a static contract cannot see for dynamic imports. The jobs of
:mod:`pipelines.jobs` neither print, exit nor parse arguments (an AST check, since no import
contract sees a ``print``). The store is encapsulated: only its own module reads
``FeatureStore``'s private attributes, and only :mod:`featurestore.store.layout` spells chunk
keys (AST checks, each shown to catch what it looks for).
"""

import ast
import os
import pathlib
import re
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
    return subprocess.run(
        [str(LINT), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def copy_tree(target):
    for name in PACKAGES:
        shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "setup.cfg", target / "setup.cfg")
    return target


def test_contracts_hold():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    "module, line, broken",
    [
        ("featurestore/datasets/labels.py", "import classifiers.metrics", "One-way flow"),
        ("featurestore/media/decode.py", "import featurestore.store", "featurestore subpackages"),
        ("classifiers/metrics.py", "import featurestore.store", "arrays only"),
        ("classifiers/linear.py", "import torch", "torch only in classifiers.dcase_networks"),
        ("classifiers/input_checks.py", "import classifiers.fitting", "No import cycles"),
        (
            "pipelines/jobs/split_files.py",
            "import pipelines.commands.options",
            "commands above jobs",
        ),
        (
            "pipelines/commands/extract.py",
            "import pipelines.commands.segments",
            "no command imports another command",
        ),
    ],
)
def test_a_forbidden_import_breaks_a_contract(tmp_path, module, line, broken):
    tree = copy_tree(tmp_path)
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}\n")
    result = lint(tree)
    assert result.returncode != 0
    broken_lines = [text for text in result.stdout.splitlines() if "BROKEN" in text]
    assert any(broken in text for text in broken_lines), result.stdout


def test_cpu_side_imports_without_torch():
    modules = [
        "featurestore",
        "featurestore.store",
        "featurestore.datasets",
        "classifiers",
        "pipelines.commands.cli",
    ]
    modules += [
        f"classifiers.{p.stem}"
        for p in (ROOT / "classifiers").glob("*.py")
        if p.stem != "__init__"
    ]
    code = BLOCK_TORCH + "".join(f"import {m}\n" for m in modules)
    code += "import pipelines.commands.cli; pipelines.commands.cli.build_parser()\n"
    code += "assert 'torch' not in sys.modules\n"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr


def job_violations(source):
    """``[(line, what)]``: the prints, exits and argparse uses in a module's source."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = (
                node.func.id
                if isinstance(node.func, ast.Name)
                else node.func.attr
                if isinstance(node.func, ast.Attribute)
                else None
            )
            if name in ("print", "exit", "quit", "_exit"):
                found.append((node.lineno, f"{name}()"))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.name for alias in node.names] + [getattr(node, "module", None) or ""]
            if any(name.split(".")[0] == "argparse" for name in names):
                found.append((node.lineno, "argparse"))
    return sorted(found)


@pytest.mark.parametrize(
    "path", sorted((ROOT / "pipelines" / "jobs").glob("*.py")), ids=lambda path: path.name
)
def test_jobs_neither_print_exit_nor_parse_arguments(path):
    assert job_violations(path.read_text()) == []


def test_the_job_check_finds_each_violation():
    source = (
        "import argparse\nimport sys\n\ndef job():\n    print('done')\n"
        "    sys.exit(0)\n\ndef parse():\n    from argparse import Namespace\n"
    )
    assert job_violations(source) == [
        (1, "argparse"),
        (5, "print()"),
        (6, "exit()"),
        (9, "argparse"),
    ]


# -- the store encapsulated -------------------------------------------------------------------

STORE_MODULE = ROOT / "featurestore" / "store" / "feature_store.py"
LAYOUT_MODULE = ROOT / "featurestore" / "store" / "layout.py"


def package_modules():
    return sorted(path for name in PACKAGES for path in (ROOT / name).rglob("*.py"))


def private_names(source, class_name=None):
    """Private attribute and method names a class defines (``self._x = ...``, ``def _x``);
    every class of ``source`` when ``class_name`` is None. Dunder names are left out."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef) or class_name not in (None, node.name):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.add(inner.name)
            elif (
                isinstance(inner, ast.Attribute)
                and isinstance(inner.ctx, ast.Store)
                and isinstance(inner.value, ast.Name)
                and inner.value.id == "self"
            ):
                names.add(inner.attr)
    return {name for name in names if name.startswith("_") and not name.startswith("__")}


def private_reads(source, names):
    """``[(line, name)]``: accesses ``<expr>._name`` for ``name`` in ``names``, where ``<expr>``
    is not ``self`` or ``cls`` (an object's own attributes are its business)."""
    return sorted(
        (node.lineno, node.attr)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute)
        and node.attr in names
        and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
    )


def checked_store_names():
    """FeatureStore's private names, less those another class of the packages defines too
    (``ExtractJob._clips``): an AST cannot tell whose attribute ``job._clips`` reads."""
    names = private_names(STORE_MODULE.read_text(), "FeatureStore")
    for path in package_modules():
        if path != STORE_MODULE:
            names -= private_names(path.read_text())
    return names


def test_only_the_store_module_reads_the_stores_private_attributes():
    names = checked_store_names()
    assert {
        "_group",
        "_meta",
        "_feature",
        "_index",
        "_leases",
        "_setup",
        "_require_writable",
    } <= names
    found = {
        str(path.relative_to(ROOT)): private_reads(path.read_text(), names)
        for path in package_modules()
        if path != STORE_MODULE
    }
    assert {path: reads for path, reads in found.items() if reads} == {}


def test_the_private_attribute_check_finds_each_read():
    source = (
        "class Other:\n    def __init__(self, store):\n        self._group = 1\n"
        "        self._index = store._index('x')\n\n"
        "def info(store):\n    return store._group.store, store._meta\n"
    )
    assert private_names(source) == {"_group", "_index"}
    assert private_reads(source, {"_group", "_meta", "_index"}) == [
        (4, "_index"),
        (7, "_group"),
        (7, "_meta"),
    ]


#: A string that names a chunk folder: a path component ``c`` (``/c/``, ``/c``, ``c/``).
CHUNK_PART = re.compile(r"(?:^|/)c(?:/|$)")


def chunk_key_literals(source):
    """``[(line, text)]``: string literals (f-string parts included, docstrings left out)
    that are the chunk folder ``c`` or hold it as a path component."""
    tree = ast.parse(source)
    docstrings = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        ):
            docstrings.add(id(node.body[0].value))
    return sorted(
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and (node.value == "c" or ("/" in node.value and CHUNK_PART.search(node.value)))
    )


def test_chunk_keys_are_formed_in_layout_only():
    found = {
        str(path.relative_to(ROOT)): chunk_key_literals(path.read_text())
        for path in package_modules()
        if path != LAYOUT_MODULE
    }
    assert {path: texts for path, texts in found.items() if texts} == {}
    assert chunk_key_literals(LAYOUT_MODULE.read_text())  # the check sees layout's own


def test_the_chunk_key_check_finds_each_literal():
    source = (
        '"""Keys look like ``values/c/3/0``."""\n\n'
        'def key(path, i):\n    """``<path>/c/<i>``."""\n'
        '    return f"{path}/c/{i}"\n\n'
        'PREFIX = "values" + "/c"\nFOLDER = "c"\nOTHER = "abc/cd"\n'
    )
    assert chunk_key_literals(source) == [(5, "/c/"), (7, "/c"), (8, "c")]
