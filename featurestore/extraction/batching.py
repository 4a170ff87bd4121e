"""Form full network batches across clips and hand back each clip's rows once all are computed.

One :class:`Batcher` per feature, the same code for every feature: clips' items queue up in
arrival order; :meth:`Batcher.step` takes the first ``batch_items`` items (spanning clips as
needed, splitting a clip across batches when it holds more), runs the feature's runner once,
and distributes the output rows back to their clips. A runner returns one array of rows, split
by the inputs' ``item_rows``, or (for inputs whose rows the model times, ``item_rows`` None)
one ``(values, timestamps)`` pair per item.
"""

import collections
import time

import numpy as np


class Batcher:
    """Queue of clips waiting for one feature's model.

    Parameters
    ----------
    run : callable
        ``run(list of item slices) -> ndarray (rows, dim)`` (or a list of ``(values,
        timestamps)`` per item): the runner of the feature.
    batch_items : int
        Items per call (the last call of a job may be smaller).
    """

    def __init__(self, run, *, batch_items):
        self.run, self.batch_items = run, int(batch_items)
        self._queue = collections.deque()  # [key, FeatureInput, next item index]
        self._parts = {}  # key -> [(rows, timestamps or None)] so far
        self.queued_items = 0
        self.model_seconds = 0.0

    def add(self, key, feature_input):
        """Queue all items of one clip under ``key`` (unique while queued)."""
        if key in self._parts:
            raise ValueError(f"clip {key!r} queued twice")
        if len(feature_input.items) == 0:
            raise ValueError(f"clip {key!r} has no items")
        self._parts[key] = []
        self._queue.append([key, feature_input, 0])
        self.queued_items += len(feature_input.items)

    def full(self):
        return self.queued_items >= self.batch_items

    def __bool__(self):
        return bool(self._queue)

    def step(self):
        """Run one batch; return ``[(key, values, timestamps)]`` of the clips it completed."""
        slices, spans, room = [], [], self.batch_items
        for entry in self._queue:
            if room == 0:
                break
            key, feature_input, start = entry
            stop = min(start + room, len(feature_input.items))
            if stop > start:
                slices.append(feature_input.items[start:stop])
                rows = (
                    None
                    if feature_input.item_rows is None
                    else int(feature_input.item_rows[start:stop].sum())
                )
                spans.append((key, stop - start, rows))
            entry[2], room = stop, room - (stop - start)
        taken = self.batch_items - room
        self.queued_items -= taken
        if slices:
            started = time.perf_counter()
            out = self.run(slices)
            self.model_seconds += time.perf_counter() - started
            self._distribute(out, spans)
        return self._pop_finished()

    def _distribute(self, out, spans):
        """Hand the runner's output back to the clips of ``spans`` (key, items, rows)."""
        if isinstance(out, list):  # per item: (values, timestamps)
            if len(out) != sum(items for _, items, _ in spans):
                raise RuntimeError(
                    f"runner returned {len(out)} items for "
                    f"{sum(items for _, items, _ in spans)} given"
                )
            offset = 0
            for key, items, _ in spans:
                for values, stamps in out[offset : offset + items]:
                    values = np.asarray(values, dtype=np.float32)
                    stamps = np.asarray(stamps, dtype=np.float64)
                    if values.ndim != 2 or len(values) != len(stamps):
                        raise RuntimeError(
                            f"clip {key!r}: runner returned values of shape "
                            f"{values.shape} for {len(stamps)} timestamps"
                        )
                    self._parts[key].append((values, stamps))
                offset += items
            return
        rows = np.asarray(out, dtype=np.float32)
        expected = sum(n for _, _, n in spans)
        if len(rows) != expected:
            raise RuntimeError(f"runner returned {len(rows)} rows for {expected} expected")
        offset = 0
        for key, _, n in spans:
            self._parts[key].append((rows[offset : offset + n], None))
            offset += n

    def _pop_finished(self):
        done = []
        while self._queue and self._queue[0][2] == len(self._queue[0][1].items):
            key, feature_input, _ = self._queue.popleft()
            parts = self._parts.pop(key)
            values = np.concatenate([v for v, _ in parts]) if len(parts) != 1 else parts[0][0]
            stamps = feature_input.timestamps
            if stamps is None:
                stamps = np.concatenate([t for _, t in parts])
            if len(values) != len(stamps):
                raise RuntimeError(
                    f"clip {key!r}: {len(values)} rows for {len(stamps)} timestamps"
                )
            done.append((key, np.ascontiguousarray(values), stamps))
        return done
