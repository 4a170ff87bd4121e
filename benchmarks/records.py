"""Writing a benchmark's JSON record to ``bench-output/``."""

from pathlib import Path

from featurestore import outputs


def write_record(path, record):
    """Write ``record`` as indented JSON to ``path`` (parents created; never through a symbolic
    link, :mod:`featurestore.outputs`) and say where."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    outputs.write_json(path, record)
    print(f"wrote {path}")
