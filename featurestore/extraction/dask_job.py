"""``avscene extract ROOT STORE ... --dask ADDRESS`` (or ``--dask-local N``): extraction on Dask.

The client prepares the store exactly as ``--prepare-only`` does (registers new clips, probing
them in ``--workers`` local processes; declares the features with their provenance; with
``--retry-failed``, turns failed clips back to pending): the steps that change the store's
layout or its failure list, so they run before any task. It then submits one task per store
block holding clips still pending in scope (a store this command creates gets blocks small
enough for ~8 tasks per worker). Each task runs the single-process job
(:class:`~featurestore.extraction.job.ExtractJob`) restricted to its block, inside the worker
process: the same decoding, cross-clip batching, buffered block writer and failure records.
The client builds the extractors once and every task receives them (so every task computes
the features the client declared); each extractor's ``load`` caches its network, so models are
loaded once per worker process. Blocks are chunk-aligned, and one task owns one block, so
writers never share a chunk of the one shared store.

Tasks are idempotent: a block writer skips committed clips and resumes a partial chunk, so the
task of a failed worker runs again (``retries``) and the task of a lost worker (killed, out of
memory, machine gone) is reassigned by the scheduler and just resumes. The client shows progress
per finished block and ends with the single-process job's summary and exit status (1 if any
clip in scope failed).

Decoding runs inside the task on CPU workers (the Dask worker processes are the parallelism;
no isolation from a crashing decoder and no per-clip time limit there: a crash costs the task,
which Dask retries); on CUDA workers started with ``distributed.worker.daemon: false``, the task
starts ``--workers`` decoding processes of its own (docs/scale-out.md), which have both. The
dataset root, the store and the weights must be reachable from every worker under the same path
or URL.
"""

import contextlib
import logging
import multiprocessing
import time
import uuid

from featurestore import limits
from featurestore.dask_cluster import dask_client
from featurestore.errors import AvsceneError, DatasetMismatchError, UsageError
from featurestore.extraction.job import CLIP_TIMEOUT, ExtractJob, check_job_options
from featurestore.extraction.progress import PARTS, Progress
from featurestore.store.layout import DEFAULT_BLOCK_CLIPS

LOG = logging.getLogger("avscene.extract")

#: Re-runs of a task that raised (lost workers are handled by the scheduler's allowed-failures).
TASK_RETRIES = 2
#: A store created by a Dask run gets blocks small enough for this many tasks per worker ...
TASKS_PER_WORKER = 8
#: ... but no smaller than this (a block's rows are rounded up to whole chunks).
MIN_BLOCK_CLIPS = 16
#: ExtractJob options a task receives when the client is not given them.
TASK_DEFAULTS = {
    "extractors": None,
    "weights": None,
    "random_weights": None,
    "device": "auto",
    "bf16": False,
    "batch": 32,
    "workers": 0,
    "limit": None,
    "manifest": None,
    "progress": "auto",
    "storage_dtype": "float32",
    "compression": None,
    "clip_timeout": CLIP_TIMEOUT,
    "retry_failed": False,
}


class BlockJob(ExtractJob):
    """:class:`ExtractJob` restricted to the store blocks ``blocks`` (None: all of them).

    ``manifest_checksum`` (the client's) makes a worker refuse a dataset root whose manifest
    differs from the one the store was prepared with.
    """

    def __init__(self, *args, blocks=None, manifest_checksum=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.blocks, self.manifest_checksum = blocks, manifest_checksum
        self._loaded = None

    def _clips(self):
        if self._loaded is None:
            self._loaded = super()._clips()
            checksum = self._loaded[0].checksum
            if self.manifest_checksum and checksum != self.manifest_checksum:
                raise DatasetMismatchError(
                    f"{self.root}: the manifest read here (sha256 {checksum[:12]}) differs from "
                    f"the client's ({self.manifest_checksum[:12]}); workers need the same dataset"
                )
        return self._loaded

    def _my_blocks(self, store):
        blocks = store.blocks()
        return blocks if self.blocks is None else [blocks[index] for index in self.blocks]

    def work(self, store):
        """``(pending, scope)``: pending Clip records per block index (in scope); scope ids."""
        _, clips = self._clips()
        jobs, scope = self._jobs(store, clips, self._my_blocks(store))
        pending = {}
        for clip, block, _ in jobs:
            pending.setdefault(block.index, []).append(clip)
        return pending, scope

    def scope_status(self, store, scope):
        """Per clip in scope: done for every feature; failed for any feature; and per feature
        the number of clips it does not apply to (see :meth:`ExtractJob._scope_status`)."""
        return self._scope_status(store, scope)


@contextlib.contextmanager
def quiet_loggers(names, level):
    """Raise the level of loggers ``names`` to at least ``level`` for the duration."""
    loggers = [logging.getLogger(name) for name in names]
    saved = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(level, logger.getEffectiveLevel()))
    try:
        yield
    finally:
        for logger, old in zip(loggers, saved):
            logger.setLevel(old)


# -- the task (runs in a worker process) -------------------------------------------------


def _decode_workers(requested, device):
    """Decoding processes of a task: ``requested`` on CUDA in a non-daemon worker, else 0."""
    if requested <= 0:
        return 0
    from featurestore.openl3.models import resolve_device

    if resolve_device(device).type != "cuda":
        return 0  # CPU: the model needs the worker's core
    if multiprocessing.current_process().daemon:
        LOG.warning(
            "Dask worker processes are daemons and cannot start decoding processes; "
            "decoding in the task (start workers with distributed.worker.daemon: false)"
        )
        return 0
    return requested


def extract_blocks(spec, blocks):
    """Dask task: extract the pending clips of store ``blocks`` in this worker process.

    Parameters
    ----------
    spec : dict
        The job's options (see :meth:`DaskExtraction.spec`).
    blocks : list of int
        Store block indices.

    Returns
    -------
    dict
        The :class:`ExtractJob` summary of this task.
    """
    options = {key: value for key, value in spec.items() if key not in ("root", "store", "plan")}
    options.update(
        workers=_decode_workers(spec["workers"], spec["device"]),
        progress="log",
        shard=(0, 1),  # not None: a task never registers clips or features
        blocks=list(blocks),
    )
    job = BlockJob(spec["root"], spec["store"], spec["plan"], **options)
    with quiet_loggers(["avscene.extract"], logging.ERROR):  # the client reports failures
        return job.run()


# -- the client ------------------------------------------------------------------------------


class DaskExtraction:
    """The client side of ``extract --dask`` / ``--dask-local``; :meth:`run` returns the summary.

    Parameters
    ----------
    root, store, plan
        As for :class:`~featurestore.extraction.job.ExtractJob`.
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``).
    local_workers : int, optional
        Without ``scheduler``: worker processes of a LocalCluster started here.
    task : callable
        The task function (tests wrap :func:`extract_blocks`).
    **options
        The remaining keyword options of :class:`~featurestore.extraction.job.ExtractJob`
        (``extractors``, ``weights``, ``random_weights``, ``device``, ``bf16``, ``batch``,
        ``workers``, ``limit``, ``manifest``, ``progress``, ``storage_dtype``, ``compression``,
        ``clip_timeout``, ``retry_failed``); ``shard`` and ``prepare_only`` do not apply (the
        client prepares, the cluster shards by block). ``workers`` processes probe new clips
        here and, on CUDA workers, decode in each task.
    """

    def __init__(
        self,
        root,
        store,
        plan,
        *,
        scheduler=None,
        local_workers=None,
        task=extract_blocks,
        **options,
    ):
        if options.pop("shard", None) is not None or options.pop("prepare_only", False):
            raise UsageError(
                "--shard and --prepare-only do not combine with --dask or "
                "--dask-local (the client prepares, the cluster shards by block)"
            )
        self.root, self.store, self.plan, self.task = root, store, plan, task
        self.scheduler, self.local_workers = scheduler, local_workers
        self.options = {**TASK_DEFAULTS, **options}
        check_job_options(
            **{key: self.options[key] for key in ("batch", "workers", "clip_timeout", "limit")}
        )
        if local_workers is not None:
            limits.Bounds(1, limits.WORKERS.high, int).check("local_workers", local_workers)

    def _job(self, **extra):
        options = {**self.options, "device": "cpu", **extra}
        return BlockJob(self.root, self.store, self.plan, **options)

    def spec(self, checksum, extractors):
        """The picklable options every task receives (the client has done any retry reset, and
        built the extractors: every task computes the features the client declared)."""
        return {
            "root": self.root,
            "store": self.store,
            "plan": self.plan,
            **self.options,
            "extractors": extractors,
            "retry_failed": False,
            "manifest_checksum": checksum,
        }

    def run(self):
        from featurestore.store import FeatureStore

        started = time.perf_counter()
        resources = {"GPU": 1} if str(self.options["device"]).startswith("cuda") else None
        tty = {"auto": None, "bar": True, "log": False}[self.options["progress"]]
        with dask_client(
            address=self.scheduler, n_local=self.local_workers, resources=resources
        ) as client:
            n_workers = len(client.scheduler_info()["workers"])
            job = self._job(prepare_only=True)
            _ = job.extractors  # bad weights or names stop here, before any write
            self._create_store(job, n_workers)
            with quiet_loggers(["avscene.extract", "avscene.progress"], logging.WARNING):
                prepared = job.run()  # registers clips, declares features (device-free params)
            manifest, _ = job._clips()
            with FeatureStore.open(self.store, mode="r") as store:
                pending, scope = job.work(store)
            progress = Progress(
                sum(len(clips) for clips in pending.values()), label="extract", tty=tty
            )
            LOG.info(
                "%d clips in scope, %d with pending features in %d blocks; %d Dask workers at %s",
                len(scope),
                progress.total,
                len(pending),
                n_workers,
                client.scheduler.address,
            )
            self.names = job.names
            errors = self._submit(
                client, self.spec(manifest.checksum, job.extractors), pending, resources, progress
            )
        with FeatureStore.open(self.store, mode="r") as store:
            complete_all, failed_any, not_applicable = job.scope_status(store, scope)
            failures = self._failures(store, pending)
        finished = self._finished(pending, scope, complete_all | failed_any)
        if finished > progress.done:  # clips a lost task stored before it was lost
            progress.advance(finished - progress.done)
        summary = progress.finish()
        left = int((~complete_all & ~failed_any).sum())
        summary.update(
            {
                "store": str(self.store),
                "root": prepared["root"],
                "features": job.names,
                "shard": None,
                "clips_in_scope": len(scope),
                "registered": prepared["registered"],
                "retried": prepared["retried"],
                "committed_in_scope": int(complete_all.sum()),
                "failed_in_scope": int(failed_any.sum()) + left,
                "not_applicable": not_applicable,
                "failures": failures,
                "errors": errors,
                "leased": self.leased,
                "total_seconds": time.perf_counter() - started,
                "params": prepared["params"],
                "dask": {
                    "scheduler": self.scheduler or "local",
                    "workers": n_workers,
                    "tasks": len(pending),
                    "retries": TASK_RETRIES,
                },
            }
        )
        return summary

    def _create_store(self, job, n_workers):
        """Create a missing store with blocks small enough to keep every worker busy."""
        from featurestore.errors import StoreNotFoundError
        from featurestore.store import FeatureStore

        try:
            FeatureStore.open(self.store, mode="r").close()
            return
        except StoreNotFoundError:
            pass
        _, clips = job._clips()
        per_task = -(-len(clips) // (TASKS_PER_WORKER * max(n_workers, 1)))
        block_clips = min(DEFAULT_BLOCK_CLIPS, max(MIN_BLOCK_CLIPS, per_task))
        FeatureStore.open(self.store, mode="w-", block_clips=block_clips).close()
        LOG.info(
            "created %s with blocks of %d clips (one task per block)", self.store, block_clips
        )

    def _submit(self, client, spec, pending, resources, progress):
        """One task per block; fold each finished task into ``progress``; return the errors."""
        from distributed import as_completed

        run = uuid.uuid4().hex[:8]
        futures = {
            client.submit(
                self.task,
                spec,
                [index],
                key=f"avscene-extract-{run}-{index}",
                retries=TASK_RETRIES,
                resources=resources,
                pure=False,
            ): index
            for index in sorted(pending)
        }
        errors, raised, self.leased = [], [], []
        for future in as_completed(futures):
            index = futures[future]
            try:
                result = future.result()
            except Exception as error:  # after the retries: the block's clips stay pending
                reason = f"{type(error).__name__}: {error}"
                LOG.error(
                    "block %d: not extracted (%s); its clips are left pending for a rerun",
                    index,
                    reason,
                )
                errors.append({"block": index, "clips": len(pending[index]), "reason": reason})
                raised.append(error)
                continue
            progress.advance(
                result["done"], media_seconds=result["media_seconds"], failed=result["failed"]
            )
            for part in PARTS:
                progress.add_time(part, result[f"{part}_seconds"])
            errors += result["errors"]
            self.leased += result.get("leased", [])
        if raised and len(raised) == len(futures) and isinstance(raised[0], AvsceneError):
            raise raised[0]  # e.g. every worker refuses the store: bad usage
        return errors

    def _failures(self, store, pending):
        """Failures recorded for the clips this run processed, one entry per clip and reason
        (features in the order of the plan, as the single-process job lists them)."""
        wanted = {clip.clip_id for clips in pending.values() for clip in clips}
        grouped = {}
        for name in self.names:
            for _, clip_id, reason in store.failures(name):
                if clip_id in wanted:
                    grouped.setdefault((clip_id, reason), []).append(name)
        failures = [
            {"clip_id": clip_id, "features": names, "reason": reason}
            for (clip_id, reason), names in grouped.items()
        ]
        for failure in failures:
            LOG.warning(
                "failed: clip %s [%s]: %s",
                failure["clip_id"],
                ",".join(failure["features"]),
                failure["reason"],
            )
        return failures

    @staticmethod
    def _finished(pending, scope, settled):
        """How many clips of ``pending`` are now committed for every feature or failed."""
        settled_ids = {clip_id for clip_id, done in zip(scope, settled) if done}
        return sum(clip.clip_id in settled_ids for clips in pending.values() for clip in clips)
