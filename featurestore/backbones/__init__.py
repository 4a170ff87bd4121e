"""Backbone networks of the DCASE 2021 top systems, loaded from local weight files only.

- :mod:`~featurestore.backbones.images`: torchvision's ResNet-50 (ImageNet and Places365
  weights), EfficientNet-B0..B7 and EfficientNetV2-S/M, pooled penultimate features;
- :mod:`~featurestore.backbones.clip`: the OpenAI CLIP image encoders ViT-B/32 and ViT-L/14
  through open_clip;
- :mod:`~featurestore.backbones.cnn14`: PANNs CNN14 and its log-mel frontend, re-stated here;
- :mod:`~featurestore.backbones.image_transforms`: each weight set's image preprocessing in NumPy
  (what the decoding workers run);
- :mod:`~featurestore.backbones.weight_files`: reading weight files without unpickling objects,
  and seeded RANDOM weights in each official layout.

avscene never downloads: each module's docstring says where its official files come from.
Importing this package imports neither torch nor torchvision nor open_clip; building a network
does (the ``backbones`` extra installs torchvision and open_clip).
"""

from featurestore.backbones import clip, cnn14, image_transforms, images, weight_files

__all__ = ["clip", "cnn14", "image_transforms", "images", "weight_files"]
