"""torchvision's ResNet-50, EfficientNet-B0..B7 and EfficientNetV2-S/M as frame embedders.

The architectures are torchvision's (``torchvision.models.get_model(name, weights=None)``,
imported here only, when a network is built); avscene loads the weight file itself
(:mod:`~featurestore.backbones.weight_files`, never through torchvision's downloader) and
replaces the classifier by the identity, so the network returns the pooled penultimate
features (global average pool of the last feature map: 2048 for ResNet-50, 1280 .. 2560 for
EfficientNets).

:data:`WEIGHT_SETS` re-states each published ImageNet weight set (torchvision's file name and
its preprocessing: resize, crop, interpolation, mean, std; a test compares them with
torchvision's own metadata) and the Places365 ResNet-50 (the CSAIL file
``resnet50_places365.pth.tar``: a ``{"state_dict": ...}`` checkpoint with ``module.`` keys,
365 classes, resize to 256 x 256 then crop 224). A file is recognised by its name or by
torchvision's hash prefix (the first 8 hex digits of its sha256); any other file of the right
layout gets the architecture's default set's preprocessing.
"""

import contextlib
import pathlib
from dataclasses import asdict, dataclass

import numpy as np

from featurestore.backbones import weight_files
from featurestore.backbones.image_transforms import BICUBIC, BILINEAR, normalise
from featurestore.netcache import cached_network

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TORCHVISION_URL = "https://download.pytorch.org/models/"
PLACES365_URL = "http://places2.csail.mit.edu/models_places365/resnet50_places365.pth.tar"


@dataclass(frozen=True)
class WeightSet:
    """One published weight set of an architecture and its preprocessing."""

    name: str
    file: str
    resize: int
    crop: int
    interpolation: str
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    keep_ratio: bool = True
    classes: int = 1000
    url: str = ""

    def describe(self):
        return {
            key: (list(value) if isinstance(value, tuple) else value)
            for key, value in asdict(self).items()
            if key != "url"
        }


def _tv(name, file, resize, crop, interpolation):
    return WeightSet(name, file, resize, crop, interpolation, url=TORCHVISION_URL + file)


#: Architecture -> its weight sets, the default (torchvision's DEFAULT) first.
WEIGHT_SETS = {
    "resnet50": (
        _tv("IMAGENET1K_V2", "resnet50-11ad3fa6.pth", 232, 224, BILINEAR),
        _tv("IMAGENET1K_V1", "resnet50-0676ba61.pth", 256, 224, BILINEAR),
        WeightSet(
            "PLACES365",
            "resnet50_places365.pth.tar",
            256,
            224,
            BILINEAR,
            keep_ratio=False,
            classes=365,
            url=PLACES365_URL,
        ),
    ),
    "efficientnet_b0": (
        _tv("IMAGENET1K_V1", "efficientnet_b0_rwightman-7f5810bc.pth", 256, 224, BICUBIC),
    ),
    "efficientnet_b1": (
        _tv("IMAGENET1K_V2", "efficientnet_b1-c27df63c.pth", 255, 240, BILINEAR),
        _tv("IMAGENET1K_V1", "efficientnet_b1_rwightman-bac287d4.pth", 256, 240, BICUBIC),
    ),
    "efficientnet_b2": (
        _tv("IMAGENET1K_V1", "efficientnet_b2_rwightman-c35c1473.pth", 288, 288, BICUBIC),
    ),
    "efficientnet_b3": (
        _tv("IMAGENET1K_V1", "efficientnet_b3_rwightman-b3899882.pth", 320, 300, BICUBIC),
    ),
    "efficientnet_b4": (
        _tv("IMAGENET1K_V1", "efficientnet_b4_rwightman-23ab8bcd.pth", 384, 380, BICUBIC),
    ),
    "efficientnet_b5": (
        _tv("IMAGENET1K_V1", "efficientnet_b5_lukemelas-1a07897c.pth", 456, 456, BICUBIC),
    ),
    "efficientnet_b6": (
        _tv("IMAGENET1K_V1", "efficientnet_b6_lukemelas-24a108a5.pth", 528, 528, BICUBIC),
    ),
    "efficientnet_b7": (
        _tv("IMAGENET1K_V1", "efficientnet_b7_lukemelas-c5b4e57e.pth", 600, 600, BICUBIC),
    ),
    "efficientnet_v2_s": (
        _tv("IMAGENET1K_V1", "efficientnet_v2_s-dd5fe13b.pth", 384, 384, BILINEAR),
    ),
    "efficientnet_v2_m": (
        _tv("IMAGENET1K_V1", "efficientnet_v2_m-dc08266a.pth", 480, 480, BILINEAR),
    ),
}

#: Architecture -> pooled penultimate feature size.
DIMS = {
    "resnet50": 2048,
    "efficientnet_b0": 1280,
    "efficientnet_b1": 1280,
    "efficientnet_b2": 1408,
    "efficientnet_b3": 1536,
    "efficientnet_b4": 1792,
    "efficientnet_b5": 2048,
    "efficientnet_b6": 2304,
    "efficientnet_b7": 2560,
    "efficientnet_v2_s": 1280,
    "efficientnet_v2_m": 1280,
}
ARCHITECTURES = tuple(WEIGHT_SETS)


def identify(arch, path, sha256, wrapper):
    """``(WeightSet, how it was recognised)`` of a weight file for architecture ``arch``."""
    name = pathlib.Path(path).name
    for weight_set in WEIGHT_SETS[arch]:
        if name == weight_set.file:
            return weight_set, "file name"
        prefix = weight_set.file.rsplit("-", 1)[-1].split(".")[0]
        if weight_set.url.startswith(TORCHVISION_URL) and sha256.startswith(prefix):
            return weight_set, "sha256 prefix"
    if arch == "resnet50" and wrapper == "state_dict":
        return WEIGHT_SETS[arch][2], "Places365 checkpoint layout"
    return WEIGHT_SETS[arch][0], "unknown file: the default set's preprocessing"


def build(arch, classes=1000):
    """torchvision's architecture with random initial weights (eval mode)."""
    import torchvision

    return torchvision.models.get_model(arch, weights=None, num_classes=classes).eval()


def head_name(arch):
    return "fc" if arch == "resnet50" else "classifier"


def classes_of(arch, state):
    key = "fc.weight" if arch == "resnet50" else "classifier.1.weight"
    return int(state[key].shape[0]) if key in state else 1000


def write_random(arch, path, *, seed):
    """RANDOM weights for ``arch`` in torchvision's state-dict layout (tests and demos only)."""
    template = build(arch).state_dict()
    return weight_files.write_random(path, template, seed=seed, what=f"torchvision {arch}")


class ImageNetwork:
    """A loaded image backbone: uint8 crops in, pooled features out (see :meth:`embed`)."""

    def __init__(self, net, *, mean, std, device, dtype, channels_last, cast_weights=False):
        self.net, self.mean, self.std = net, mean, std
        self.device, self.dtype, self.channels_last = device, dtype, channels_last
        self.cast_weights = cast_weights and dtype == "bfloat16"  # net holds bf16 weights

    def embed(self, crops, *, batch_size=32):
        """(N, S, S, 3) uint8 -> (N, dim) float32 ndarray, ``batch_size`` crops per call."""
        import torch

        crops = np.asarray(crops)
        out = []
        for start in range(0, len(crops), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(crops[start : start + batch_size]))
            with torch.inference_mode():
                x = normalise(x.to(self.device), self.mean, self.std)
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                if self.cast_weights:
                    out.append(self.net(x.to(torch.bfloat16)).float().cpu().numpy())
                    continue
                with autocast(self.device, self.dtype):
                    out.append(self.net(x).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def autocast(device, dtype):
    import torch

    if dtype == "bfloat16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def load_state(arch, path):
    """``(state dict checked against the architecture, random seed, wrapper)``."""
    state, seed, wrapper = weight_files.unwrap(weight_files.read_checkpoint(path), path)
    classes = classes_of(arch, state)
    template = build(arch, classes).state_dict()
    shapes = {key: tuple(value.shape) for key, value in template.items()}
    return weight_files.check_state(state, shapes, path, what=f"torchvision {arch}"), seed, wrapper


def load_network(arch, path, *, device, dtype="float32", fold_bn=True, channels_last=True):
    """Load (cached per process) ``arch`` from ``path`` on ``device``.

    ``fold_bn`` folds every BatchNorm into the convolution before it
    (``torch.fx.experimental.optimization.fuse``; same function within float rounding);
    ``fold_bn=False, channels_last=False`` is torchvision's plain eager network.
    """
    import torch

    device = torch.device(device)

    def make():
        state, seed, _ = load_state(arch, path)
        weight_files.warn_random(f"torchvision {arch}", path, seed)
        net = build(arch, classes_of(arch, state))
        net.load_state_dict(state)
        setattr(net, head_name(arch), torch.nn.Identity())
        net = net.eval().requires_grad_(False)
        if fold_bn:
            from torch.fx.experimental.optimization import fuse

            net = fuse(net)
        net = net.to(device)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        return net

    return cached_network(path, (arch, str(device), dtype, fold_bn, channels_last), make)
