"""avscene feature store: dataset manifests, media decoding, extractors, zarr store.

The extractors (:mod:`featurestore.extractors`) are OpenL3 in PyTorch, log-mel, the image and
audio backbones (:mod:`featurestore.backbones`) and HEAR modules. Importing this package is
cheap: torch (and torchvision, open_clip) are imported only by the functions that build or run
networks, never here.
"""

__version__ = "0.1.0"
