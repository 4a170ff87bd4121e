"""avscene feature store: dataset manifests, media decoding, OpenL3 in PyTorch, log-mel, zarr store.

Importing this package is cheap: torch is imported only by the modules that run networks
(``featurestore.openl3``, ``featurestore.frontends.logmel``), never here.
"""

__version__ = "0.1.0"
