"""Fixtures and markers shared by every test package (helpers: :mod:`tests.helpers`)."""

import os
import pathlib

import pytest
from threadpoolctl import threadpool_limits

#: Test files that ``make test-fast`` leaves out (marked ``heavy``): backbone parity, the official
#: DCASE 2021 checkpoints, extraction killed and resumed, the demo, Dask clusters. ``make test``
#: and CI run them.
HEAVY_FILES = {
    "tests/featurestore/test_backbones_parity.py",
    "tests/pipelines/test_dcase2021.py",
    "tests/featurestore/test_extraction_robustness.py",
    "tests/featurestore/test_store_crash.py",
    "tests/pipelines/test_extract_backbones.py",
    "tests/pipelines/test_demo.py",
    "tests/pipelines/test_dask_cluster.py",
    "tests/classifiers/test_dask_models.py",
}
ROOT = pathlib.Path(__file__).resolve().parents[1]


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "needs_reference(path): the test reads reference data at path; skipped "
        "where it is absent, failed under CI (CI=true)",
    )
    config.addinivalue_line(
        "markers", "heavy: left out by `make test-fast` (parity, kills, the demo, Dask)"
    )


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.resolve().relative_to(ROOT).as_posix() in HEAVY_FILES:
            item.add_marker(pytest.mark.heavy)


def pytest_runtest_setup(item):
    for marker in item.iter_markers("needs_reference"):
        path = pathlib.Path(marker.args[0])
        if path.exists():
            continue
        message = f"reference data absent: {path} (set $AVSCENE_OPENL3_REFERENCE)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture
def single_thread():
    """Limit BLAS/OpenMP and torch to one thread for the test.

    On a machine shared with other jobs, multi-threaded BLAS and torch calls on small arrays
    spend most of their time waiting for a free core, so the classifier tests use one thread.
    """
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is installed in the dev environment
        torch = None
    previous = torch.get_num_threads() if torch else None
    if torch:
        torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    if torch:
        torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def weights(tmp_path_factory):
    """A folder of seeded RANDOM OpenL3 audio and image weights (seed 7, official file names)."""
    from featurestore import openl3

    return openl3.random_weights_folder(7, folder=tmp_path_factory.mktemp("weights"))
