"""The Python entry point of the extraction job for any extractors: :func:`extract`."""

from featurestore.extraction.dask_job import DaskExtraction
from featurestore.extraction.job import ExtractJob
from featurestore.extraction.prepare import Plan


def extract(root, store, *, extractors, plan=None, scheduler=None, local_workers=None, **options):
    """Extract the features of ``extractors`` from a dataset into a store; return the summary.

    The Python entry point of the job for any :class:`~featurestore.extractors.Extractor`
    (built-in ones from :func:`featurestore.extractors.builtin`, or your own): it resumes, shards
    (``shard=(i, n)``) and records failures exactly like ``avscene extract``.

    Parameters
    ----------
    root, store : str or Path
        The dataset (folder or CSV manifest) and the feature store (path or URL).
    extractors : list of Extractor
    plan : Plan, optional
        Decoding settings (video frame sampling, audio checks); its ``features`` are unused.
    scheduler, local_workers : optional
        Run on a Dask cluster (``--dask`` / ``--dask-local``).
    **options
        The keyword options of :class:`~featurestore.extraction.job.ExtractJob` (``device``,
        ``batch``, ``workers``, ``shard``, ``limit``, ``manifest``, ``progress``, ``prepare_only``, ``storage_dtype``,
        ``compression``, ``clip_timeout``, ``retry_failed``).

    Returns
    -------
    dict
        The run summary (``avscene extract --json``).
    """
    plan = Plan(features=()) if plan is None else plan
    if scheduler is not None or local_workers is not None:
        return DaskExtraction(
            root,
            store,
            plan,
            scheduler=scheduler,
            local_workers=local_workers,
            extractors=extractors,
            **options,
        ).run()
    return ExtractJob(root, store, plan, extractors=extractors, **options).run()
