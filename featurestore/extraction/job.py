"""The extraction job behind ``avscene extract`` (see :mod:`pipelines.commands.extract` for the CLI).

Steps: read the manifest; probe the durations of clips the store does not know yet, in worker
processes, and register them (``add_clips``); load one runner per feature and declare the
features with their full provenance (``create_feature``); with ``retry_failed``, turn the clips
recorded as failed back to pending (``writer.retry``); list what is still pending in this
shard's blocks; record the features whose modality a clip has no file for as not applicable
(``writer.not_applicable``); decode the other pending clips in worker processes (each clip
within a time limit) while this process batches their items across clips through the networks;
write each clip as soon as all its rows exist (``block_writer``), or record why it failed
(``writer.fail``: bad media, a decoder crash, the time limit, non-finite rows).
"""

import contextlib
import logging
import math
import numbers
import statistics
import time

import numpy as np

from featurestore import limits
from featurestore.errors import LeaseError, ShardSetupError, UsageError
from featurestore.extraction.batching import Batcher
from featurestore.extraction.prepare import (
    PreparedClip,
    init_worker,
    plan_extractors,
    prepare_task,
    probe_task,
)
from featurestore.extraction.progress import Progress
from featurestore.extraction.workers import WorkerCrash, WorkerPool
from featurestore.provenance import utc_now
from featurestore.store.layout import COMMITTED, FAILED, NOT_APPLICABLE

LOG = logging.getLogger("avscene.extract")

#: Default seconds one clip may take to probe or decode in a worker (``--clip-timeout``).
CLIP_TIMEOUT = 600.0


def check_job_options(*, batch, workers, clip_timeout, limit=None, shard=None):
    """Refuse job options outside :mod:`featurestore.limits` with a one-line ``ValueError``
    (``clip_timeout`` and ``limit`` may be None, ``shard`` None or ``(index, count)``)."""
    limits.BATCH.check("batch", batch)
    limits.WORKERS.check("workers", workers)
    if clip_timeout is not None:
        limits.CLIP_TIMEOUT.check("clip_timeout (seconds)", clip_timeout)
    if limit is not None:
        limits.LIMIT.check("limit", limit)
    if shard is not None:
        if not isinstance(shard, (tuple, list)) or len(shard) != 2:
            raise ValueError(f"shard must be (index, count), got {shard!r}")
        count = limits.SHARDS.check("shard count", shard[1])
        limits.Bounds(0, count - 1, int).check("shard index", shard[0])


def probe_durations(clips, root, *, workers=1, timeout=None, probe=probe_task):
    """Durations of ``clips`` (audio's, else video's), probed in worker processes.

    A clip whose media cannot be probed (bad media, a crash of the worker probing it, the time
    limit) is still registered, so that its failure can be recorded in the store: with the
    median duration of the others (1.0 s if none), its reason in the returned ``unknown``.
    Decoding it later fails and reports the reason.

    Parameters
    ----------
    clips : list of Clip
    root : Path
        The dataset root.
    workers : int
        Probing processes (0: in this process, no isolation from a crashing decoder).
    timeout : float, optional
        Seconds one clip's probe may take (None: no limit).
    probe : callable
        ``probe((clip, root))`` -> duration in seconds or a reason (str); default
        :func:`~featurestore.extraction.prepare.probe_task`.

    Returns
    -------
    clips : list of Clip with durations
    unknown : dict clip id -> why it got a stand-in duration
    """
    with WorkerPool(probe, workers=workers, timeout=timeout) as pool:
        outcomes = dict(pool.imap_unordered([(clip, root) for clip in clips]))
    durations, unknown = {}, {}
    for index, clip in enumerate(clips):
        outcome = outcomes[index]
        if isinstance(outcome, numbers.Real) and math.isfinite(outcome) and outcome > 0:
            durations[clip.clip_id] = float(outcome)
        elif isinstance(outcome, (str, Exception)):
            unknown[clip.clip_id] = str(outcome)
        else:
            unknown[clip.clip_id] = f"probed duration {outcome!r} is not a positive number"
    known = list(durations.values())
    stand_in = statistics.median(known) if known else 1.0
    return [clip.with_duration(durations.get(clip.clip_id, stand_in)) for clip in clips], unknown


def non_finite_reason(values):
    """Why rows ``values`` (n_rows, dim) may not be stored (NaN or inf in them), or ''."""
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if not bad.size:
        return ""
    shown = ", ".join(str(row) for row in bad[:5]) + (", ..." if bad.size > 5 else "")
    return f"non-finite values in rows {shown} ({bad.size} of {len(values)} rows)"


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
        self.leased = {}  # (feature, block index) -> one-line reason

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
        """Store a clip's frames; False when refused (non-finite values, or by the store):
        then recorded as failed, with the reason; None when another writer has the block or
        committed the clip first."""
        problem = non_finite_reason(values)
        if problem:
            self.fail(name, block, clip_id, problem)
            return False
        started = time.perf_counter()
        stored = self._call(name, block, "write", clip_id, values, timestamps)
        self._done(name, block)
        self.seconds += time.perf_counter() - started
        return stored

    def fail(self, name, block, clip_id, reason):
        """Record that a clip failed for feature ``name``, with a one-line reason."""
        self._settle("fail", name, block, clip_id, reason)

    def not_applicable(self, name, block, clip_id, reason):
        """Record that a clip lacks the modality of feature ``name`` (done, not failed)."""
        self._settle("not_applicable", name, block, clip_id, reason)

    def _settle(self, how, name, block, clip_id, reason):
        started = time.perf_counter()
        self._call(name, block, how, clip_id, reason)
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
    """One run of the extraction (see the module docstring); :meth:`run` returns the summary.

    Parameters
    ----------
    root, store : str or Path
        The dataset (folder or CSV manifest) and the feature store (path or URL).
    plan : Plan
        What to extract (``plan.features``, unless ``extractors`` are given) and how to decode.
    extractors : list of Extractor, optional
        The features to extract, instead of the built-in ones named by ``plan.features`` (then
        ``weights``, ``random_weights`` and ``bf16`` are theirs to decide and unused here).
    workers : int
        Processes that probe and decode media (0: this process, no isolation, no time limit).
    clip_timeout : float
        Seconds one clip may take to probe or decode before its worker is killed and the clip
        recorded as failed (0 or None: no limit).
    batch, workers, clip_timeout, limit, shard
        Bounded by :mod:`featurestore.limits` (:func:`check_job_options`: a ValueError before
        anything is read).
    retry_failed : bool
        Turn the clips recorded as failed for the plan's features back to pending first.
    probe, prepare : callable
        The worker functions (:func:`~featurestore.extraction.prepare.probe_task`,
        :func:`~featurestore.extraction.prepare.prepare_task`); tests pass wrappers.

    The other options are those of ``avscene extract`` (:mod:`pipelines.commands.extract`).
    """

    def __init__(
        self,
        root,
        store,
        plan,
        *,
        extractors=None,
        weights=None,
        random_weights=None,
        device="auto",
        bf16=False,
        batch=32,
        workers=1,
        shard=None,
        limit=None,
        manifest=None,
        progress="auto",
        prepare_only=False,
        storage_dtype="float32",
        compression=None,
        clip_timeout=CLIP_TIMEOUT,
        retry_failed=False,
        probe=probe_task,
        prepare=prepare_task,
    ):
        check_job_options(
            batch=batch, workers=workers, clip_timeout=clip_timeout, limit=limit, shard=shard
        )
        self.root, self.store_url, self.plan = root, store, plan
        self.clip_timeout, self.retry_failed = clip_timeout or None, retry_failed
        self.probe, self.prepare = probe, prepare
        self.random_weights = random_weights
        self.storage = {"storage_dtype": storage_dtype}
        if compression is not None:
            self.storage["compression"] = compression
        self.prepare_only = prepare_only
        self.weights, self.device, self.bf16, self.batch = weights, device, bf16, batch
        self.workers, self.shard, self.limit, self.manifest = workers, shard, limit, manifest
        self.progress_mode = progress
        self.leased = []  # blocks skipped because another writer held them
        self._extractors = None if extractors is None else list(extractors)

    @property
    def extractors(self):
        """The job's extractors (the given ones, else those of ``plan.features``)."""
        if self._extractors is None:
            self._extractors = plan_extractors(
                self.plan, weights=self.weights, random_weights=self.random_weights, bf16=self.bf16
            )
        names = [e.name for e in self._extractors]
        if len(set(names)) != len(names):
            raise UsageError(f"feature names must be unique, got {', '.join(names)}")
        return self._extractors

    @property
    def names(self):
        """Feature names in the store, in extractor order."""
        return [extractor.name for extractor in self.extractors]

    # --- setup -----------------------------------------------------------------------------

    def _clips(self):
        from featurestore.datasets import load_manifest

        manifest = load_manifest(self.root, manifest=self.manifest)
        for line in manifest.problems[:20]:
            LOG.warning("manifest: %s", line)
        if len(manifest.problems) > 20:
            LOG.warning("manifest: %d more problems", len(manifest.problems) - 20)
        clips = manifest.clips[: self.limit] if self.limit else manifest.clips
        return manifest, clips

    def _register(self, store, manifest, clips):
        known = set(store.clips.clip_id.tolist()) if len(store.clips) else set()
        new = [clip for clip in clips if clip.clip_id not in known]
        if new and self.shard is not None:
            raise ShardSetupError(
                f"{self.store_url} lacks {len(new)} clips of the manifest (e.g. {new[0].clip_id}); "
                f"shards must not register clips concurrently: run the same command once with "
                f"--prepare-only and without --shard, then start the shards"
            )
        if new:
            probed, unknown = probe_durations(
                new,
                manifest.root,
                workers=self.workers,
                timeout=self.clip_timeout,
                probe=self.probe,
            )
            for clip_id, reason in sorted(unknown.items()):
                LOG.info(
                    "clip %s: media cannot be probed (%s); registered with a stand-in duration",
                    clip_id,
                    reason,
                )
            store.add_clips(probed)
            datasets = store.attrs.get("datasets", [])
            datasets.append(
                {
                    "root": str(manifest.root),
                    "kind": manifest.kind,
                    "manifest_files": list(manifest.files),
                    "manifest_checksum": manifest.checksum,
                    "clips_added": len(new),
                    "stand_in_durations": sorted(unknown),
                    "time": utc_now(),
                }
            )
            store.attrs["datasets"] = datasets
        return len(new)

    def _declare(self, store, runners):
        missing = [name for name in runners if name not in store.features]
        if missing and self.shard is not None:
            raise ShardSetupError(
                f"{self.store_url} has no feature {', '.join(missing)} yet; run the same command "
                f"once with --prepare-only and without --shard, then start the shards"
            )
        for runner in runners.values():
            store.create_feature(
                runner.name,
                dim=runner.dim,
                frame_rate=runner.frame_rate,
                params=runner.params,
                **self.storage,
            )

    def _retry_failed(self, store, clips, blocks):
        """Turn the clips of ``clips`` recorded as failed in ``blocks`` back to pending, for
        every feature of the plan; return how many clips that concerns."""
        wanted = {clip.clip_id for clip in clips}
        retried = set()
        for name in self.names:
            failed = {clip_id for _, clip_id, _ in store.failures(name) if clip_id in wanted}
            for block in blocks:
                ids = [str(clip_id) for clip_id in block.clip_ids if str(clip_id) in failed]
                if not ids:
                    continue
                try:
                    with store.block_writer(name, block) as writer:
                        for clip_id in ids:
                            writer.retry(clip_id)
                except LeaseError as error:  # the other writer's run decides about them
                    LOG.warning("%s; its failed clips are not retried", error)
                    continue
                retried.update(ids)
        if retried:
            LOG.info(
                "%d clips recorded as failed are pending again (--retry-failed)", len(retried)
            )
        return len(retried)

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
            pending = {name: set(store.pending(name, block=block)) for name in self.names}
            for clip_id in block.clip_ids:
                clip_id = str(clip_id)
                if clip_id not in wanted:
                    continue
                scope.append(clip_id)
                features = tuple(n for n in self.names if clip_id in pending[n])
                if features:
                    clip = wanted[clip_id].with_duration(durations[clip_id])
                    jobs.append((clip, block, features))
        return jobs, scope

    # --- the loop --------------------------------------------------------------------------

    def run(self):
        from featurestore.extraction.runners import load_runners
        from featurestore.store import FeatureStore

        started = time.perf_counter()
        manifest, clips = self._clips()
        extractors = self.extractors  # bad weights or names stop here, before any write
        with FeatureStore.open(self.store_url, mode="a") as store:
            added = self._register(store, manifest, clips)
            runners = load_runners(extractors, device=self.device, batch=self.batch)
            self._declare(store, runners)
            blocks = self._my_blocks(store)
            retried = self._retry_failed(store, clips, blocks) if self.retry_failed else 0
            jobs, scope = self._jobs(store, clips, blocks)
            if self.prepare_only:
                jobs = []
            LOG.info(
                "%d clips in scope (%d newly registered), %d with pending features; "
                "%d decoding workers",
                len(scope),
                added,
                len(jobs),
                self.workers,
            )
            tty = {"auto": None, "bar": True, "log": False}[self.progress_mode]
            progress = Progress(len(jobs), label="extract", tty=tty)
            pool = WorkerPool(
                self.prepare,
                workers=self.workers,
                initializer=init_worker,
                initargs=(manifest.root, self.plan, extractors),
                timeout=self.clip_timeout,
            )
            with pool:
                failures, errors = self._loop(store, runners, jobs, pool, progress)
            if jobs:
                store.record_sizes()  # what info over HTTP reports (no listing there)
            summary = progress.finish()
            complete_all, failed_any, not_applicable = self._scope_status(store, scope)
        summary.update(
            {
                "store": str(self.store_url),
                "root": str(manifest.root),
                "features": self.names,
                "shard": list(self.shard) if self.shard else None,
                "clips_in_scope": len(scope),
                "registered": added,
                "retried": retried,
                "committed_in_scope": int(complete_all.sum()),
                "failed_in_scope": int(failed_any.sum()) + len(errors),
                "not_applicable": not_applicable,
                "failures": failures,
                "errors": errors,
                "leased": self.leased,
                "total_seconds": time.perf_counter() - started,
                "params": {name: runner.params for name, runner in runners.items()},
            }
        )
        earlier = int(failed_any.sum()) - len({f["clip_id"] for f in failures})
        if earlier > 0:
            LOG.warning(
                "%d clips in scope failed in earlier runs (see the store's failure list; "
                "--retry-failed runs them again)",
                earlier,
            )
        modality = {e.name: e.modality for e in self.extractors}
        for name, count in not_applicable.items():
            if count:
                LOG.info(
                    "%s: not applicable to %d clips in scope (no %s file in the manifest)",
                    name,
                    count,
                    modality[name],
                )
        return summary

    def _scope_status(self, store, scope):
        """Per clip in scope: done for every feature (committed or not applicable), failed for
        any feature; and per feature, the number of clips in scope it does not apply to."""
        positions = store.clips.positions(scope) if scope else np.zeros(0, np.int64)
        complete_all = np.ones(len(positions), bool)
        failed_any = np.zeros(len(positions), bool)
        not_applicable = {}
        for name in self.names:
            status = store.status(name)[positions]
            complete_all &= (status == COMMITTED) | (status == NOT_APPLICABLE)
            failed_any |= status == FAILED
            not_applicable[name] = int(np.sum(status == NOT_APPLICABLE))
        return complete_all, failed_any, not_applicable

    def _loop(self, store, runners, jobs, pool, progress):
        """Feed decoded clips through the batchers into the writers; return failures, errors."""
        outstanding = {}
        for _, block, features in jobs:
            for name in features:
                outstanding[(name, block.index)] = outstanding.get((name, block.index), 0) + 1
        with Writers(store, outstanding) as writers:
            loop = _Loop(
                runners, {e.name: e.modality for e in self.extractors}, jobs, writers, progress
            )
            results = pool.imap_unordered(loop.record_not_applicable())
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
        self.leased = [
            {"feature": name, "block": index, "reason": reason}
            for (name, index), reason in sorted(writers.leased.items())
        ]
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

    def __init__(self, runners, modality, jobs, writers, progress):
        self.modality = modality
        self.batchers = {
            name: Batcher(runner.run, batch_items=runner.batch_items)
            for name, runner in runners.items()
        }
        self.jobs, self.writers, self.progress = jobs, writers, progress
        self.blocks = {clip.clip_id: (clip, block) for clip, block, _ in jobs}
        self.left = {clip.clip_id: len(features) for clip, _, features in jobs}
        self.tasks = []  # (job index, features the clip has media for)
        self.failed_ids = set()
        self.failures, self.errors, self.refused = [], [], []

    def record_not_applicable(self):
        """Record the pending features whose modality a clip has no file for; return the
        decoding tasks ``(clip, features)`` of the others."""
        for index, (clip, block, features) in enumerate(self.jobs):
            present = []
            for name in features:
                modality = self.modality[name]
                if getattr(clip, modality) is None:
                    self.writers.not_applicable(
                        name, block, clip.clip_id, f"the manifest names no {modality} file"
                    )
                    self._finished(clip.clip_id)
                else:
                    present.append(name)
            if present:
                self.tasks.append((index, tuple(present)))
        return [(self.jobs[index][0], features) for index, features in self.tasks]

    def handle(self, position, prepared):
        """Route the worker result of task ``position``: failures to the writers, inputs to the
        batchers. A crashed or stopped worker fails the clip; a bug leaves it pending."""
        index, features = self.tasks[position]
        clip, block, _ = self.jobs[index]
        if isinstance(prepared, WorkerCrash):
            prepared = PreparedClip(clip.clip_id, failures=dict.fromkeys(features, str(prepared)))
        if isinstance(prepared, Exception):  # a bug: report, leave pending
            reason = f"{type(prepared).__name__}: {prepared}"
            LOG.error(
                "clip %s: not extracted (%s); left pending for a rerun", clip.clip_id, reason
            )
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
            self.progress.advance(
                media_seconds=clip.duration, failed=int(clip_id in self.failed_ids)
            )

    def _report(self, clip, prepared):
        """Log each distinct failure reason of a clip once, with the features it affects."""
        by_reason = {}
        for name, reason in prepared.failures.items():
            by_reason.setdefault(reason, []).append(name)
        for reason, names in by_reason.items():
            LOG.warning("failed: clip %s [%s]: %s", clip.clip_id, ",".join(names), reason)
            self.failures.append({"clip_id": clip.clip_id, "features": names, "reason": reason})
            self.failed_ids.add(clip.clip_id)
