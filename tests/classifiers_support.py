"""Shared pieces of the classifier tests: one BLAS/torch thread, small structured data.

On a machine shared with other jobs, multi-threaded BLAS and torch calls on small arrays spend
most of their time waiting for a free core (20x slower measured here), so these tests run with
one thread.
"""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from classifiers.synthetic import make_av_features


@pytest.fixture(autouse=True)
def single_thread():
    """Limit BLAS/OpenMP (and torch, when installed) to one thread for the test."""
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


def small_av(*, n_clips=60, segments=5, dim=8, n_classes=4, locations_per_class=5, seed=0):
    """Return (X, y, groups, data) with audio and video side by side in X (dim + dim columns)."""
    data = make_av_features(n_clips=n_clips, segments_per_clip=segments, dim_audio=dim,
                            dim_video=dim, n_classes=n_classes,
                            locations_per_class=locations_per_class, random_state=seed)
    X = np.concatenate([data["audio"], data["video"]], axis=1)
    return X, data["y"], data["location"], data
