"""The model side of extraction: each extractor loaded once per process, as a :class:`Runner`.

A runner maps a batch of items taken from many clips (a list of slices of
:class:`~featurestore.extractors.FeatureInput` ``items``) to their rows, shape
(total rows, dim) float32, in order (or, for extractors whose rows the model times, one
``(values, timestamps)`` pair per item). Its ``params`` are the feature's provenance as stored
with ``create_feature`` (the extractor's): everything that determines the numbers and nothing
that does not (device, file paths, speed-only layout options), so shards run on different
machines fill one store. torch is imported by the extractors' ``load`` functions only.
"""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Runner:
    """A loaded extractor (see the module docstring)."""

    name: str
    dim: int
    frame_rate: float
    params: dict
    batch_items: int
    run: Callable
    info: dict  # speed-only settings and paths, for the run log (not the fingerprint)


def load_runners(extractors, *, device="auto", batch=32):
    """Load every extractor on ``device``.

    Parameters
    ----------
    extractors : list of Extractor
    device : "auto", "cpu", "cuda", ...
    batch : int
        Network inputs per call (windows, frames), for extractors that take the job's batch.

    Returns
    -------
    dict name -> Runner, in ``extractors`` order
    """
    runners = {}
    for extractor in extractors:
        run = extractor.load(device=device, batch=batch)
        items = extractor.batch_items or batch
        runners[extractor.name] = Runner(
            extractor.name,
            extractor.dim,
            extractor.frame_rate,
            extractor.params,
            items,
            run,
            {**extractor.info, "device": str(device)},
        )
    return runners
