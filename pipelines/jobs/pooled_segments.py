"""Storing the pooled 1-s segments of a store's features (``segments``, ``extract --segments``).

:func:`write_segments` stores the segments of the named features (every copy that is not up
to date, or all with ``overwrite``); :func:`store_segments` is the end of an extraction: only
the features with no pending clips, the others logged and left out. Both open the store
themselves and return what :meth:`featurestore.store.FeatureStore.write_segments` did.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

#: The poolings that can be stored (repeated here: ``--help`` imports no store code).
STORED_POOLINGS = ("mean", "max", "meanstd", "center")

log = logging.getLogger("avscene.extract")


def write_segments(
    where: str,
    *,
    poolings: Sequence[str] = ("mean",),
    features: Sequence[str] | None = None,
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """Store the pooled segments of ``features`` (None: all of the store's) of ``where``.

    Parameters
    ----------
    where : str
        Feature store: a directory or an fsspec URL, opened for writing.
    poolings : sequence of str
        From :data:`STORED_POOLINGS`.
    features : sequence of str, optional
        Features to pool (None: every feature of the store).
    overwrite : bool
        Write copies that are up to date again.

    Returns
    -------
    list of dict
        One per feature and pooling: ``feature``, ``pooling``, ``segments``, ``dim`` and
        ``written`` (False: it was up to date).
    """
    from featurestore.store import FeatureStore

    with FeatureStore.open(where, mode="r+") as store:
        return store.write_segments(features, poolings=poolings, overwrite=overwrite)


def store_segments(
    where: str, features: Sequence[str], poolings: Sequence[str]
) -> dict[str, list]:
    """Store the segments of the ``features`` of ``where`` that have no pending clips (the end
    of ``avscene extract --segments``); return what was done, one dict per feature and pooling
    (``skipped`` names the features left out)."""
    from featurestore.store import FeatureStore

    with FeatureStore.open(where, mode="r+") as store:
        ready = [name for name in features if name in store.features and not store.pending(name)]
        for name in sorted(set(features) - set(ready)):
            log.info("segments of %s not stored: it has pending clips", name)
        done = store.write_segments(ready, poolings=poolings) if ready else []
    for entry in done:
        log.info(
            "segments/%s/%s: %d segments %s",
            entry["feature"],
            entry["pooling"],
            entry["segments"],
            "written" if entry["written"] else "up to date",
        )
    return {"stored": done, "skipped": sorted(set(features) - set(ready))}
