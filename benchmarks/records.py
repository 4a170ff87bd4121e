"""Writing a benchmark's JSON record to ``bench-output/``."""

import json
from pathlib import Path


def write_record(path, record):
    """Write ``record`` as indented JSON to ``path`` (parents created) and say where."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")
