"""Image preprocessing of the backbones' published weight sets, re-stated in NumPy (no torch).

torchvision's ``ImageClassification`` preset (every ImageNet weight set of ResNet-50 and
EfficientNet) and open_clip's CLIP preprocess both do, for an RGB frame:

1. resize so that the short side is ``resize`` pixels, the long side ``int(resize * long /
   short)`` (truncated), with an antialiased bilinear or bicubic filter (below);
2. centre crop ``crop`` x ``crop``: offsets ``int(round((size - crop) / 2))`` (round half even);
3. scale to [0, 1] (``/ 255``) and normalise per channel ``(x - mean) / std``.

Places365's ResNet-50 resizes to a fixed 256 x 256 (aspect ratio not kept) before the crop.

Antialiased resampling (torch's ``interpolate(antialias=True)``, PIL's ``resize``), separable:
output pixel i of an axis of ``n_in -> n_out`` samples sits at ``centre = (i + 0.5) * scale``
with ``scale = n_in / n_out``; the filter is stretched by ``s = max(scale, 1)``, its support is
``radius * s`` (bilinear: triangle, radius 1; bicubic: Keys cubic with a = -0.5, radius 2); the
taps are input samples ``j`` in ``[int(centre - support + 0.5), int(centre + support + 0.5))``
(clipped to the image) with weights ``filter((j - centre + 0.5) / s)`` normalised to sum 1.
Here both passes run in float64 on the pixels the crop keeps, and the result is rounded half to
even to uint8, as torchvision does for a uint8 tensor (PIL rounds each pass in fixed point, so
its results may differ by one grey level).

:func:`resize_crop` returns the uint8 crop: that is what the decoding workers ship; scaling and
normalisation (step 3) run on the device (:func:`normalise`, the same float32 arithmetic as
torchvision's ``convert_image_dtype`` and ``normalize``).
"""

import numpy as np

from featurestore.errors import MediaError

BILINEAR, BICUBIC = "bilinear", "bicubic"
RADIUS = {BILINEAR: 1.0, BICUBIC: 2.0}
CUBIC_A = -0.5


def _filter(x, kind):
    x = np.abs(x)
    if kind == BILINEAR:
        return np.maximum(0.0, 1.0 - x)
    a = CUBIC_A
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return np.where(x < 1, near, np.where(x < 2, far, 0.0))


def axis_weights(n_in, n_out, kind, *, first=0, count=None):
    """Taps of output samples ``first .. first + count - 1`` of one axis.

    Returns
    -------
    index : ndarray, shape (count, taps), int64
        Input sample of each tap (clipped into the image; such taps have weight 0).
    weights : ndarray, shape (count, taps), float64
        Normalised filter weights.
    """
    count = n_out - first if count is None else count
    scale = n_in / n_out
    stretch = max(scale, 1.0)
    support = RADIUS[kind] * stretch
    centres = (np.arange(first, first + count) + 0.5) * scale
    low = np.maximum((centres - support + 0.5).astype(np.int64), 0)
    high = np.minimum((centres + support + 0.5).astype(np.int64), n_in)
    taps = int((high - low).max())
    index = low[:, None] + np.arange(taps)[None, :]
    weights = _filter((index - centres[:, None] + 0.5) / stretch, kind)
    weights = np.where(index < high[:, None], weights, 0.0)
    totals = weights.sum(axis=1, keepdims=True)
    weights = np.divide(weights, totals, out=np.zeros_like(weights), where=totals != 0)
    return np.minimum(index, n_in - 1), weights


def _resample(image, index, weights, axis):
    """Weighted sum of the taps along ``axis`` (0: rows, 1: columns) of (H, W, C) float64."""
    out = None
    for tap in range(index.shape[1]):
        taken = np.take(image, index[:, tap], axis=axis)
        shape = (-1, 1, 1) if axis == 0 else (1, -1, 1)
        term = taken * weights[:, tap].reshape(shape)
        out = term if out is None else out + term
    return out


def resized_size(height, width, resize, *, keep_ratio=True):
    """(height, width) after resizing the short side to ``resize`` (or to resize x resize)."""
    if not keep_ratio:
        return resize, resize
    if height <= width:
        return resize, int(resize * width / height)
    return int(resize * height / width), resize


def crop_offset(size, crop):
    return int(round((size - crop) / 2.0))


def resize_crop(rgb, *, resize, crop, interpolation, keep_ratio=True):
    """Resize (antialiased) and centre-crop one frame, as the weight set's preset does.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    resize, crop : int
    interpolation : "bilinear" or "bicubic"
    keep_ratio : bool
        False resizes to ``resize x resize`` (Places365).

    Returns
    -------
    ndarray, shape (crop, crop, 3), uint8
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise MediaError(f"expected an (H, W, 3) uint8 frame, got {rgb.shape} {rgb.dtype}")
    height, width = rgb.shape[:2]
    out_h, out_w = resized_size(height, width, resize, keep_ratio=keep_ratio)
    if min(out_h, out_w) < crop:
        raise MediaError(
            f"frame {width}x{height} resizes to {out_w}x{out_h}, smaller than the "
            f"{crop}x{crop} crop"
        )
    rows = axis_weights(height, out_h, interpolation, first=crop_offset(out_h, crop), count=crop)
    cols = axis_weights(width, out_w, interpolation, first=crop_offset(out_w, crop), count=crop)
    # only the source rows and columns the crop needs take part
    used_rows = np.unique(rows[0])
    used_cols = np.unique(cols[0])
    image = rgb[used_rows][:, used_cols].astype(np.float64)
    out = _resample(image, np.searchsorted(used_rows, rows[0]), rows[1], 0)
    out = _resample(out, np.searchsorted(used_cols, cols[0]), cols[1], 1)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def normalise(batch, mean, std):
    """uint8 crops (N, S, S, 3) as a torch tensor -> float32 (N, 3, S, S), ``(x / 255 - mean) /
    std`` (torchvision's arithmetic)."""
    import torch

    x = batch.permute(0, 3, 1, 2).to(torch.float32) / 255
    mean = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std
