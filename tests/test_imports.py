"""Import hygiene: the CPU side must work without torch; featurestore never imports classifiers."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]

BLOCK_TORCH = """
import sys
class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch blocked for this test")
sys.meta_path.insert(0, BlockTorch())
"""


def run_python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, check=False)


def test_cpu_side_imports_without_torch():
    modules = ["featurestore", "classifiers", "pipelines.cli"]
    modules += [f"classifiers.{p.stem}" for p in (ROOT / "classifiers").glob("*.py")
                if p.stem != "__init__"]
    code = BLOCK_TORCH + "".join(f"import {m}\n" for m in modules)
    code += "assert 'torch' not in sys.modules\n"
    result = run_python(code)
    assert result.returncode == 0, result.stderr


def test_featurestore_never_imports_classifiers():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "featurestore").rglob("*.py")
                 if "import classifiers" in p.read_text() or "from classifiers" in p.read_text()]
    assert offenders == []
