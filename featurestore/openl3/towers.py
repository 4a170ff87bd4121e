"""OpenL3 audio and image towers as torch modules, built from the official weight arrays.

Keras kernels (kh, kw, in, out) become torch (out, in, kh, kw) once, at build time, with no
spatial flip (both frameworks compute cross-correlation). BatchNorm uses Keras' epsilon 1e-3
and the moving statistics (inference only).

``fold_bn=True`` folds every BatchNorm that directly follows a convolution into that
convolution's kernel and bias (computed in float64, then stored as float32): the same function,
one pass over the activations less. The two BatchNorms that cannot be folded exactly stay:
the input BN (the convolution after it zero-pads its *output*) and the image tower's
block-1 BN that follows a ReLU.
"""

import numpy as np
import torch
from torch import nn

from featurestore.openl3 import architecture as arch


class Embedding(nn.Module):
    """Trunk, final max-pool and Keras-order flatten: (N, C, H, W) -> (N, embedding_size).

    The trunk's first ``fp32_layers`` layers (input BN and the first convolution with its BN)
    always run in float32, also under bf16 autocast: rounding the normalised network input to
    bf16 costs the most accuracy (it triples 1 - cosine to fp32) for 0.3 % of the FLOPs.
    """

    def __init__(self, trunk, pool_size):
        super().__init__()
        self.trunk = trunk
        self.pool = nn.MaxPool2d(kernel_size=pool_size, stride=pool_size)
        first_conv = next(i for i, layer in enumerate(trunk) if isinstance(layer, nn.Conv2d))
        follows = first_conv + 1 < len(trunk) and isinstance(trunk[first_conv + 1], nn.BatchNorm2d)
        self.fp32_layers = first_conv + 1 + int(follows)

    def forward(self, x):
        with torch.autocast(x.device.type, enabled=False):
            x = self.trunk[: self.fp32_layers](x.float())
        y = self.pool(self.trunk[self.fp32_layers :](x))
        return y.permute(0, 2, 3, 1).flatten(1)  # Keras flattens (H, W, C), C fastest


def _conv(kernel, bias):
    out_channels, in_channels = kernel.shape[3], kernel.shape[2]
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
    conv.weight.data = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
    conv.bias.data = torch.from_numpy(np.ascontiguousarray(bias))
    return conv


def _batchnorm(gamma, beta, mean, variance):
    bn = nn.BatchNorm2d(gamma.shape[0], eps=arch.BN_EPSILON)
    bn.weight.data = torch.from_numpy(gamma.copy())
    bn.bias.data = torch.from_numpy(beta.copy())
    bn.running_mean.data = torch.from_numpy(mean.copy())
    bn.running_var.data = torch.from_numpy(variance.copy())
    return bn


def _folded_conv(kernel, bias, gamma, beta, mean, variance):
    """Conv2D followed by BN as one convolution (float64 arithmetic, float32 result)."""
    scale = gamma.astype(np.float64) / np.sqrt(variance.astype(np.float64) + arch.BN_EPSILON)
    folded_kernel = (kernel.astype(np.float64) * scale).astype(np.float32)
    folded_bias = ((bias.astype(np.float64) - mean) * scale + beta).astype(np.float32)
    return _conv(folded_kernel, folded_bias)


def build_trunk(kind, arrays, *, fold_bn=False):
    """The convolutional trunk (everything before the final max-pool) as ``nn.Sequential``.

    Parameters
    ----------
    kind : "audio" or "image"
    arrays : list of list of ndarray
        Weight groups in file order, as returned by ``weights.load_weights``.
    fold_bn : bool
        Fold each BN that directly follows a convolution into it.
    """
    specs = arch.layer_specs(kind)
    groups = iter(arrays)
    layers = []
    position = 0
    while position < len(specs):
        op = specs[position][0]
        if op == "conv":
            kernel, bias = next(groups)
            if fold_bn and position + 1 < len(specs) and specs[position + 1][0] == "bn":
                layers.append(_folded_conv(kernel, bias, *next(groups)))
                position += 1
            else:
                layers.append(_conv(kernel, bias))
        elif op == "bn":
            layers.append(_batchnorm(*next(groups)))
        elif op == "relu":
            layers.append(nn.ReLU(inplace=True))
        else:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))  # floor, like Keras "valid"
        position += 1
    return nn.Sequential(*layers)


def build_network(kind, arrays, *, input_repr="mel256", embedding_size=512, fold_bn=False):
    """The whole tower in eval mode with gradients off: (N, C, H, W) -> (N, embedding_size).

    Input layout: audio (N, 1, bands, frames) dB spectrogram; image (N, 3, 224, 224).
    """
    key = input_repr if kind == arch.AUDIO else arch.IMAGE
    height, width, _ = arch.output_shape(kind, input_repr, embedding_size)
    pool_size = arch.POOL_SIZES[key][embedding_size]
    net = Embedding(build_trunk(kind, arrays, fold_bn=fold_bn), pool_size)
    # Every official pool size divides the map exactly, so Keras' "same" pooling equals this.
    final = arch.INPUT_SHAPES[key][0] // 8, arch.INPUT_SHAPES[key][1] // 8
    assert final == (height * pool_size[0], width * pool_size[1]), (final, pool_size)
    net.eval()
    for parameter in net.parameters():
        parameter.requires_grad_(False)
    return net
