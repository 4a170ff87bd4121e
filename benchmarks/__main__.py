"""Run every benchmark module (``make bench``) or the ones named: ``python -m benchmarks store``."""

import importlib
import sys

#: Benchmark modules in the order of the data flow; each has ``main(argv) -> int``.
MODULES = (
    ("openl3", "benchmarks.bench_openl3"),
    ("extractors", "benchmarks.bench_extractors"),
    ("extract", "benchmarks.bench_extract"),
    ("store", "benchmarks.bench_store"),
    ("remote", "benchmarks.bench_remote"),
    ("classifiers", "benchmarks.bench_classifiers"),
)


def main(argv):
    wanted = argv or [name for name, _ in MODULES]
    status = 0
    for name, module_name in MODULES:
        if name in wanted:
            print(f"== benchmark: {name}", flush=True)
            status |= importlib.import_module(module_name).main([])
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
