"""Connecting to a Dask distributed cluster: a scheduler address, or a local cluster made here.

Shared by the Dask extraction driver and Dask training; dask and distributed are imported when
a client is made, never at import time.
"""

import contextlib
import logging


@contextlib.contextmanager
def dask_client(*, address=None, n_local=None, resources=None):
    """A ``distributed.Client`` of the scheduler at ``address``, or of a new LocalCluster.

    Parameters
    ----------
    address : str, optional
        Scheduler address (``tcp://host:8786``).
    n_local : int, optional
        Worker processes of a LocalCluster (1 thread each) when no address is given.
    resources : dict, optional
        Resources of every local worker (e.g. ``{"GPU": 1}``). Local GPU workers are started as
        non-daemon processes, so that their tasks may start decoding processes.
    """
    import dask
    from distributed import Client, LocalCluster

    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:  # -v shows Dask's own logs
        logging.getLogger("distributed").setLevel(logging.WARNING)
    cluster = None
    if address:
        client = Client(address)
    else:
        with dask.config.set({"distributed.worker.daemon": not resources}):
            cluster = LocalCluster(
                n_workers=n_local,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                resources=resources,
            )
        client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
