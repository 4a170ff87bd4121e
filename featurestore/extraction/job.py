"""The extraction job behind ``avscene extract`` (see :mod:`pipelines.extract` for the CLI).

Steps: read the manifest; probe the durations of clips the store does not know yet and register
them (``add_clips``); load one runner per feature and declare the features with their full
provenance (``create_feature``); list what is still pending in this shard's blocks; decode the
pending clips in worker processes while this process batches their items across clips through
the networks; write each clip as soon as all its rows exist (``block_writer``), or record why
it failed (``writer.fail``).
"""

import contextlib
import logging
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from featurestore.errors import LeaseError, ShardSetupError
from featurestore.extraction.batching import Batcher
from featurestore.extraction.progress import Progress
from featurestore.extraction.workers import WorkerPool
from featurestore.provenance import utc_now

LOG = logging.getLogger("avscene.extract")


def probe_durations(clips, root, *, threads=8):
    """Durations of ``clips`` (audio's, else video's); unprobeable clips get the median.

    A clip whose media cannot be probed is still registered (so that its failure can be
    recorded in the store): with the median duration of the others (1.0 s if none), flagged in
    the returned ``unknown`` set. Decoding it later fails and reports the reason.

    Returns
    -------
    clips : list of Clip with durations
    unknown : set of clip ids registered with a stand-in duration
    """
    from featurestore.extraction.prepare import probe_task

    with ThreadPoolExecutor(threads) as pool:
        outcomes = list(pool.map(probe_task, [(clip, root) for clip in clips]))
    known = [o for o in outcomes if not isinstance(o, str)]
    stand_in = statistics.median(known) if known else 1.0
    unknown = {clip.clip_id for clip, o in zip(clips, outcomes) if isinstance(o, str)}
    return [clip.with_duration(stand_in if isinstance(o, str) else o)
            for clip, o in zip(clips, outcomes)], unknown


class Writers:
    """Open each (feature, block) writer on first use; close it when its last clip is done.

    A block leased by another live writer (or whose lease this job loses) is skipped: its clips
    stay pending, listed in :attr:`leased`, and are neither written nor counted as failures.
    """

    def __init__(self, store, outstanding):
        self.store, self.outstanding = store, dict(outstanding)
        self._open = {}
        self._stack = contextlib.ExitStack()
        self.seconds = 0.0
        self.leased = {}                   # (feature, block index) -> one-line reason

    def _skip_block(self, key, error):
        if key not in self.leased:
            LOG.warning("%s; its clips are left pending for a rerun", error)
            self.leased[key] = str(error)
        if key in self._open:
            self._open.pop(key)[0].close()

    def __enter__(self):
        self._stack.__enter__()
        return self

    def __exit__(self, *exc):
        return self._stack.__exit__(*exc)

    def _writer(self, name, block):
        """The open writer of (name, block), or None if the block is skipped (leased)."""
        key = (name, block.index)
        if key in self.leased:
            return None
        if key not in self._open:
            try:
                writer = self.store.block_writer(name, block)
            except LeaseError as error:
                self._skip_block(key, error)
                return None
            stack = contextlib.ExitStack()
            self._open[key] = (stack, stack.enter_context(writer))
            self._stack.push(stack)
        return self._open[key][1]

    def _done(self, name, block):
        key = (name, block.index)
        self.outstanding[key] -= 1
        if self.outstanding[key] == 0 and key in self._open:
            stack, _ = self._open.pop(key)
            try:
                stack.close()
            except LeaseError as error:
                self._skip_block(key, error)

    def write(self, name, block, clip_id, values, timestamps):
        """Store a clip's frames; False when the store refused them (recorded as failed), None
        when another writer has the block or committed the clip first."""
        started = time.perf_counter()
        stored = self._call(name, block, "write", clip_id, values, timestamps)
        self._done(name, block)
        self.seconds += time.perf_counter() - started
        return stored

    def fail(self, name, block, clip_id, reason):
        started = time.perf_counter()
        self._call(name, block, "fail", clip_id, reason)
        self._done(name, block)
        self.seconds += time.perf_counter() - started

    def _call(self, name, block, method, clip_id, *args):
        writer = self._writer(name, block)
        if writer is None:
            return None
        try:
            done = getattr(writer, method)(clip_id, *args)
        except LeaseError as error:
            self._skip_block((name, block.index), error)
            return None
        return None if not done and writer.committed(clip_id) else done

    def skip(self, name, block):
        """A clip left pending (unexpected error, not recorded): just count it done."""
        self._done(name, block)


class ExtractJob:
    """One run of the extraction (see the module docstring); :meth:`run` returns the summary."""

    def __init__(self, root, store, plan, *, weights=None, random_weights=None, device="auto",
                 bf16=False, batch=32, workers=1, shard=None, limit=None, manifest=None,
                 progress="auto", prepare_only=False, storage_dtype="float32", compression=None):
        self.root, self.store_url, self.plan = root, store, plan
        self.random_weights = random_weights
        self.storage = {"storage_dtype": storage_dtype}
        if compression is not None:
            self.storage["compression"] = compression
        self.prepare_only = prepare_only
        self.weights, self.device, self.bf16, self.batch = weights, device, bf16, batch
        self.workers, self.shard, self.limit, self.manifest = workers, shard, limit, manifest
        self.progress_mode = progress
        self.leased = []                   # blocks skipped because another writer held them

    # --- setup -----------------------------------------------------------------------------

    def _clips(self):
        from featurestore.datasets import load_manifest

        manifest = load_manifest(self.root, manifest=self.manifest)
        for line in manifest.problems[:20]:
            LOG.warning("manifest: %s", line)
        if len(manifest.problems) > 20:
            LOG.warning("manifest: %d more problems", len(manifest.problems) - 20)
        clips = manifest.clips[:self.limit] if self.limit else manifest.clips
        return manifest, clips

    def _register(self, store, manifest, clips):
        known = set(store.clips.clip_id.tolist()) if len(store.clips) else set()
        new = [clip for clip in clips if clip.clip_id not in known]
        if new and self.shard is not None:
            raise ShardSetupError(
                f"{self.store_url} lacks {len(new)} clips of the manifest (e.g. {new[0].clip_id}); "
                f"shards must not register clips concurrently: run the same command once with "
                f"--prepare-only and without --shard, then start the shards")
        if new:
            probed, unknown = probe_durations(new, manifest.root)
            for clip_id in sorted(unknown):
                LOG.info("clip %s: media cannot be probed; registered with a stand-in duration",
                         clip_id)
            store.add_clips(probed)
            datasets = store.attrs.get("datasets", [])
            datasets.append({"root": str(manifest.root), "kind": manifest.kind,
                             "manifest_files": list(manifest.files),
                             "manifest_checksum": manifest.checksum, "clips_added": len(new),
                             "stand_in_durations": sorted(unknown), "time": utc_now()})
            store.attrs["datasets"] = datasets
        return len(new)

    def _declare(self, store, runners):
        missing = [name for name in runners if name not in store.features]
        if missing and self.shard is not None:
            raise ShardSetupError(
                f"{self.store_url} has no feature {', '.join(missing)} yet; run the same command "
                f"once with --prepare-only and without --shard, then start the shards")
        for runner in runners.values():
            store.create_feature(runner.name, dim=runner.dim, frame_rate=runner.frame_rate,
                                 params=runner.params, **self.storage)

    def _my_blocks(self, store):
        blocks = store.blocks()
        if self.shard is None:
            return blocks
        index, count = self.shard
        return [block for block in blocks if block.index % count == index]

    def _jobs(self, store, clips, blocks):
        """[(clip with stored duration, block, pending features)] in block order; scope ids."""
        wanted = {clip.clip_id: clip for clip in clips}
        table = store.clips
        durations = dict(zip(table.clip_id.tolist(), table.duration.tolist()))
        scope, jobs = [], []
        for block in blocks:
            pending = {name: set(store.pending(name, block=block)) for name in self.plan.features}
            for clip_id in block.clip_ids:
                clip_id = str(clip_id)
                if clip_id not in wanted:
                    continue
                scope.append(clip_id)
                features = tuple(n for n in self.plan.features if clip_id in pending[n])
                if features:
                    clip = wanted[clip_id].with_duration(durations[clip_id])
                    jobs.append((clip, block, features))
        return jobs, scope

    # --- the loop --------------------------------------------------------------------------

    def run(self):
        from featurestore.extraction.prepare import init_worker, prepare_task
        from featurestore.extraction.runners import load_runners
        from featurestore.store import FeatureStore

        started = time.perf_counter()
        manifest, clips = self._clips()
        with FeatureStore.open(self.store_url, mode="a") as store:
            added = self._register(store, manifest, clips)
            runners = load_runners(self.plan, weights=self._weights(), device=self.device,
                                   bf16=self.bf16, batch=self.batch)
            self._declare(store, runners)
            jobs, scope = self._jobs(store, clips, self._my_blocks(store))
            if self.prepare_only:
                jobs = []
            LOG.info("%d clips in scope (%d newly registered), %d with pending features; "
                     "%d decoding workers", len(scope), added, len(jobs), self.workers)
            tty = {"auto": None, "bar": True, "log": False}[self.progress_mode]
            progress = Progress(len(jobs), label="extract", tty=tty)
            pool = WorkerPool(prepare_task, workers=self.workers, initializer=init_worker,
                              initargs=(manifest.root, self.plan))
            with pool:
                failures, errors = self._loop(store, runners, jobs, pool, progress)
            summary = progress.finish()
            committed_all, failed_any = self._scope_status(store, scope)
        summary.update({
            "store": str(self.store_url), "root": str(manifest.root),
            "features": list(self.plan.features), "shard": list(self.shard) if self.shard else None,
            "clips_in_scope": len(scope), "registered": added,
            "committed_in_scope": int(committed_all.sum()),
            "failed_in_scope": int(failed_any.sum()) + len(errors),
            "failures": failures, "errors": errors, "leased": self.leased,
            "total_seconds": time.perf_counter() - started,
            "params": {name: runner.params for name, runner in runners.items()},
        })
        earlier = int(failed_any.sum()) - len({f["clip_id"] for f in failures})
        if earlier > 0:
            LOG.warning("%d clips in scope failed in earlier runs (see the store's failure list)",
                        earlier)
        return summary

    def _weights(self):
        """The OpenL3 weights: the given ones, or a seeded random set (``random_weights``)."""
        if self.random_weights is None or not any(
                name.startswith("openl3") for name in self.plan.features):
            return self.weights
        from featurestore import openl3

        return openl3.random_weights_folder(self.random_weights)

    def _scope_status(self, store, scope):
        """Per clip in scope: committed for every feature; failed for any feature."""
        positions = store.clips.positions(scope) if scope else np.zeros(0, np.int64)
        committed_all = np.ones(len(positions), bool)
        failed_any = np.zeros(len(positions), bool)
        for name in self.plan.features:
            status = store.status(name)[positions]
            committed_all &= status == 1
            failed_any |= status == 2
        return committed_all, failed_any

    def _loop(self, store, runners, jobs, pool, progress):
        """Feed decoded clips through the batchers into the writers; return failures, errors."""
        outstanding = {}
        for _, block, features in jobs:
            for name in features:
                outstanding[(name, block.index)] = outstanding.get((name, block.index), 0) + 1
        with Writers(store, outstanding) as writers:
            loop = _Loop(runners, jobs, writers, progress)
            results = pool.imap_unordered([(clip, features) for clip, _, features in jobs])
            while True:
                waited = time.perf_counter()
                item = next(results, None)
                progress.add_time("wait", time.perf_counter() - waited)
                if item is None:
                    break
                loop.handle(*item)
            loop.finish()
            progress.add_time("write", writers.seconds)
        progress.add_time("model", sum(b.model_seconds for b in loop.batchers.values()))
        self._report_refused(store, loop.refused, loop.failures)
        self.leased = [{"feature": name, "block": index, "reason": reason}
                       for (name, index), reason in sorted(writers.leased.items())]
        return loop.failures, loop.errors

    @staticmethod
    def _report_refused(store, refused, failures):
        """Clips whose frames the store refused (e.g. more rows than reserved): log the reason."""
        if not refused:
            return
        reasons = {(name, clip_id): reason for name, clip_id, reason in store.failures()}
        for name, clip_id in refused:
            reason = reasons.get((name, clip_id), "refused by the store")
            LOG.warning("failed: clip %s [%s]: %s", clip_id, name, reason)
            failures.append({"clip_id": clip_id, "features": [name], "reason": reason})


class _Loop:
    """State of one extraction loop: batchers per feature, clips in flight, what failed."""

    def __init__(self, runners, jobs, writers, progress):
        self.batchers = {name: Batcher(runner.run, batch_items=runner.batch_items)
                         for name, runner in runners.items()}
        self.jobs, self.writers, self.progress = jobs, writers, progress
        self.blocks = {clip.clip_id: (clip, block) for clip, block, _ in jobs}
        self.left = {clip.clip_id: len(features) for clip, _, features in jobs}
        self.failed_ids = set()
        self.failures, self.errors, self.refused = [], [], []

    def handle(self, index, prepared):
        """Route one worker result: failures to the writers, inputs to the batchers."""
        clip, block, features = self.jobs[index]
        if isinstance(prepared, Exception):     # a crash or a bug: report, leave pending
            reason = f"{type(prepared).__name__}: {prepared}"
            LOG.error("clip %s: not extracted (%s); left pending for a rerun", clip.clip_id, reason)
            self.errors.append({"clip_id": clip.clip_id, "reason": reason})
            self.failed_ids.add(clip.clip_id)
            for name in features:
                self.writers.skip(name, block)
                self._finished(clip.clip_id)
            return
        self.progress.add_time("decode", prepared.decode_seconds)
        self._report(clip, prepared)
        for name in features:
            if name in prepared.failures:
                self.writers.fail(name, block, clip.clip_id, prepared.failures[name])
                self._finished(clip.clip_id)
            else:
                self.batchers[name].add(clip.clip_id, prepared.inputs[name])
                self._drain(name)

    def finish(self):
        """Run the last, partial batches."""
        for name in self.batchers:
            self._drain(name, final=True)

    def _drain(self, name, final=False):
        batcher = self.batchers[name]
        while batcher.full() or (final and batcher):
            for clip_id, values, stamps in batcher.step():
                block = self.blocks[clip_id][1]
                if self.writers.write(name, block, clip_id, values, stamps) is False:
                    self.refused.append((name, clip_id))
                    self.failed_ids.add(clip_id)
                self._finished(clip_id)

    def _finished(self, clip_id):
        self.left[clip_id] -= 1
        if self.left[clip_id] == 0:
            clip = self.blocks[clip_id][0]
            self.progress.advance(media_seconds=clip.duration,
                                  failed=int(clip_id in self.failed_ids))

    def _report(self, clip, prepared):
        """Log each distinct failure reason of a clip once, with the features it affects."""
        by_reason = {}
        for name, reason in prepared.failures.items():
            by_reason.setdefault(reason, []).append(name)
        for reason, names in by_reason.items():
            LOG.warning("failed: clip %s [%s]: %s", clip.clip_id, ",".join(names), reason)
            self.failures.append({"clip_id": clip.clip_id, "features": names, "reason": reason})
            self.failed_ids.add(clip.clip_id)
