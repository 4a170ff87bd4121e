"""Writing one block of one feature: buffered, chunk-aligned, committed clip by clip.

A writer owns the rows of its block's region and the block's chunk of the index arrays, so
writers of different blocks (threads, processes, machines sharing a file system) never touch the
same chunk; a lease (:mod:`featurestore.store.concurrency.leases`) makes sure there is one writer per block,
and the writer checks it still holds the lease before every write. Rows are buffered and written
in whole chunks; a clip's status turns to committed in the index only after every one of its
rows is on disk, and ``status`` is written after the other index arrays. After a crash, a new
writer of the block reloads the partial chunk that follows the last committed clip and carries
on from there: nothing is duplicated or lost, and the arrays end up identical to those of an
uninterrupted run.
"""

import logging
import time

import numpy as np

from featurestore.errors import LeaseLostError, StoreError, StoreFormatError, full_disk
from featurestore.store.chunks import ChunkReader, delete_chunks, gather_rows, read_span
from featurestore.store.layout import COMMITTED, FAILED, NOT_APPLICABLE, PENDING

log = logging.getLogger(__name__)

#: Whole chunks buffered before a write (zarr then compresses them in parallel threads).
FLUSH_CHUNKS = 4


class BlockWriter:
    """Writes the frames of the clips of one block for one feature. Use as a context manager.

    Obtained from :meth:`FeatureStore.block_writer`, which takes the block's lease; see the
    module docstring for guarantees. The writer releases the lease when it closes.
    """

    def __init__(self, feature, block, *, durations, region, lease, commit_seconds=1.0):
        self.feature = feature
        self._lease = lease
        self.commit_seconds = commit_seconds
        self._last_commit = time.monotonic()
        self.block = block
        self._local = {clip_id: i for i, clip_id in enumerate(block.clip_ids)}
        self._reserved = feature.reserved(durations[block.start : block.stop])
        self._durations = durations[block.start : block.stop]
        self.region_start, self.region_stop = (int(r) for r in region)
        span = (block.start, block.stop)
        self._offset = read_span(feature.offset, *span).astype(np.int64)
        self._count = read_span(feature.count, *span).astype(np.int64)
        self._status = read_span(feature.status, *span).astype(np.int8)
        self._reason = [str(text) for text in read_span(feature.reason, *span)]
        n_clips = block.stop - block.start
        feature.check_committed(
            self._offset,
            self._count,
            self._status,
            low=np.full(n_clips, self.region_start),
            high=np.full(n_clips, self.region_stop),
            reserved=self._reserved,
            clip_ids=block.clip_ids,
        )
        committed = self._status == COMMITTED
        ends = self._offset[committed] + self._count[committed]
        self._next_row = int(ends.max()) if ends.size else self.region_start
        rows = feature.chunk_rows
        self._buffer_start = self._next_row // rows * rows
        self._values, self._times = self._reload(self._buffer_start, self._next_row)
        self._uncommitted = []  # (local index, first row, n_rows), in row order
        self._buffered_clips = set()  # local indices of self._uncommitted
        self._index_dirty = False
        self.closed = False
        self.written = 0

    # -- public -----------------------------------------------------------------------------
    def write(self, clip_id, values, timestamps):
        """Store the frames of one clip.

        Parameters
        ----------
        clip_id : str
            A clip of this block.
        values : ndarray, shape (n_frames, dim)
        timestamps : ndarray, shape (n_frames,)
            Seconds from the clip start, non-decreasing.

        Returns
        -------
        bool
            True if stored; False if the clip was already committed (left unchanged) or was
            recorded as failed because its frames do not fit (see :meth:`FeatureStore.failures`).
        """
        i = self._local_index(clip_id)
        if self._status[i] == COMMITTED or self._in_buffer(i):
            return False
        self._lease.heartbeat()
        values = np.asarray(values)
        timestamps = np.asarray(timestamps, dtype=np.float64)
        n_rows = self._check_shapes(clip_id, values, timestamps)
        problem = self._problem(i, values, timestamps)
        if problem:
            self.fail(clip_id, problem)
            return False
        self._values.append(np.array(values, dtype=self.feature.storage_dtype, copy=True))
        self._times.append(np.array(timestamps, copy=True))
        self._uncommitted.append((i, self._next_row, n_rows))
        self._buffered_clips.add(i)
        self._next_row += n_rows
        if self._next_row - self._buffer_start >= FLUSH_CHUNKS * self.feature.chunk_rows:
            self._flush(final=False)
        self.written += 1
        return True

    def fail(self, clip_id, reason):
        """Record that ``clip_id`` has no frames for this feature, with a one-line reason."""
        i = self._local_index(clip_id)
        if self._status[i] == COMMITTED:
            return False
        if self._in_buffer(i):
            raise StoreError(f"clip {clip_id!r} was written in this session; it cannot also fail")
        text = " ".join(str(reason).split())[:500] or "failed"
        self._status[i], self._reason[i] = FAILED, text
        self._offset[i], self._count[i] = self._next_row, 0
        self._index_dirty = True
        log.debug("%s: clip %s failed: %s", self.feature.name, clip_id, text)
        return True

    def committed(self, clip_id):
        """True if ``clip_id`` is committed in this writer's view of the index."""
        return bool(self._status[self._local_index(clip_id)] == COMMITTED)

    def not_applicable(self, clip_id, reason):
        """Record that ``clip_id`` lacks this feature's modality (not a failure), with a reason."""
        if not self.fail(clip_id, reason):
            return False
        self._status[self._local_index(clip_id)] = NOT_APPLICABLE
        return True

    def retry(self, clip_id):
        """Turn a failed clip back to pending (``extract --retry-failed``); False if not failed."""
        i = self._local_index(clip_id)
        if self._status[i] != FAILED:
            return False
        self._status[i], self._reason[i] = PENDING, ""
        self._offset[i] = self._count[i] = 0
        self._index_dirty = True
        return True

    def close(self):
        """Write buffered rows (last chunk padded), commit their clips, clear the region tail,
        release the lease.

        Raises
        ------
        LeaseLostError
            The lease was taken over: nothing more was written (the clips not committed yet
            stay pending).
        """
        if self.closed or self._lease.lost:  # a lost lease was reported already
            self.closed = True
            return
        try:
            self._flush(final=True)
            self._clear_tail()
        finally:
            self.closed = True
            self._lease.release()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is None:
            self.close()
            return False
        if self._lease.lost:  # nothing may be written any more
            self.closed = True
            return False
        try:  # keep the clips that were complete before the error
            self.close()
        except Exception as error:  # the original error matters more
            level = logging.DEBUG if full_disk(error) and full_disk(exc) else logging.WARNING
            log.log(
                level,
                "%s block %d: could not flush after an error: %s",
                self.feature.name,
                self.block.index,
                error,
            )
        return False

    def __repr__(self):
        return (
            f"<BlockWriter {self.feature.name!r} block {self.block.index} rows "
            f"[{self.region_start}, {self.region_stop}) next {self._next_row}>"
        )

    # -- internals --------------------------------------------------------------------------
    def _local_index(self, clip_id):
        if self._lease.lost:
            raise LeaseLostError(f"{self._lease.what}: this writer lost its lease")
        if self.closed:
            raise StoreError(f"writer of block {self.block.index} is closed")
        try:
            return self._local[clip_id]
        except KeyError:
            raise StoreFormatError(
                f"clip {clip_id!r} is not in block {self.block.index} "
                f"(clips {self.block.start}..{self.block.stop - 1})"
            ) from None

    def _in_buffer(self, i):
        return i in self._buffered_clips

    def _check_shapes(self, clip_id, values, timestamps):
        dim = self.feature.dim
        if values.ndim != 2 or values.shape[1] != dim:
            raise StoreFormatError(
                f"clip {clip_id!r}: {self.feature.name} values have shape "
                f"{values.shape}, expected (n_frames, {dim})"
            )
        if timestamps.shape != (values.shape[0],):
            raise StoreFormatError(
                f"clip {clip_id!r}: {values.shape[0]} frames but timestamps "
                f"of shape {timestamps.shape}"
            )
        return values.shape[0]

    def _problem(self, i, values, timestamps):
        """Why a clip's frames cannot be stored, or ''."""
        n_rows, reserved = values.shape[0], int(self._reserved[i])
        if n_rows > reserved:
            return (
                f"{n_rows} frames exceed the {reserved} rows reserved for a "
                f"{self._durations[i]:g} s clip at {self.feature.frame_rate:g} frames/s"
            )
        if not np.all(np.isfinite(timestamps)) or np.any(np.diff(timestamps) < 0):
            return "timestamps are not finite and non-decreasing"
        if self.feature.storage_dtype == np.float16:
            finite = np.isfinite(values)
            with np.errstate(over="ignore"):
                stored = np.isfinite(values.astype(np.float16))
            if np.any(finite & ~stored):
                return "values exceed the float16 range of this feature"
        return ""

    def _reload(self, start, stop):
        """Rows already on disk at the start of the partial chunk this writer continues."""
        if stop <= start:
            return [], []
        values = gather_rows(ChunkReader(self.feature.values), [start], [stop - start])
        times = gather_rows(ChunkReader(self.feature.timestamps), [start], [stop - start])
        return [values], [times]

    def _flush(self, *, final):
        rows = self.feature.chunk_rows
        buffered = self._next_row - self._buffer_start
        whole = buffered if final else buffered // rows * rows
        if whole:
            values = np.concatenate(self._values) if len(self._values) > 1 else self._values[0]
            times = np.concatenate(self._times) if len(self._times) > 1 else self._times[0]
            stop = self._buffer_start + -(-whole // rows) * rows
            pad = stop - self._buffer_start - whole
            out_values, out_times = values[:whole], times[:whole]
            if pad:  # the last chunk, padded with the fill values
                out_values = np.concatenate(
                    [out_values, np.zeros((pad, self.feature.dim), out_values.dtype)]
                )
                out_times = np.concatenate([out_times, np.full(pad, np.nan)])
            self._lease.confirm()
            self.feature.values[self._buffer_start : stop] = out_values
            self.feature.timestamps[self._buffer_start : stop] = out_times
            self._values = [values[whole:]] if whole < len(values) else []
            self._times = [times[whole:]] if whole < len(times) else []
            self._buffer_start += whole
        self._commit(upto=self._next_row if final else self._buffer_start, final=final)

    def _commit(self, *, upto, final=False):
        """Mark clips whose rows all lie before row ``upto`` committed; write the index.

        Between flushes the index is written at most every ``commit_seconds`` (a crash then
        costs the rerun at most that much work); at close it is always written.
        """
        if not final and time.monotonic() - self._last_commit < self.commit_seconds:
            return
        done = [entry for entry in self._uncommitted if entry[1] + entry[2] <= upto]
        self._uncommitted = self._uncommitted[len(done) :]
        for i, first, n_rows in done:
            self._buffered_clips.discard(i)
            self._status[i], self._reason[i] = COMMITTED, ""
            self._offset[i], self._count[i] = first, n_rows
        if done or self._index_dirty:
            self._write_index()

    def _write_index(self):
        self._lease.confirm()  # a writer declared dead never commits
        span = slice(self.block.start, self.block.stop)
        feature = self.feature
        feature.offset[span] = self._offset
        feature.count[span] = self._count.astype(np.int32)
        feature.reason[span] = np.array(self._reason, dtype=object)
        feature.status[span] = self._status  # last: status is the commit flag
        self._index_dirty = False
        self._last_commit = time.monotonic()

    def _clear_tail(self):
        """Remove chunks of this region past the last written chunk (left by a crashed run)."""
        rows = self.feature.chunk_rows
        tail = range(-(-self._next_row // rows), self.region_stop // rows)
        if tail:
            self._lease.confirm()
            for array in (self.feature.values, self.feature.timestamps):
                delete_chunks(ChunkReader(array), tail)
