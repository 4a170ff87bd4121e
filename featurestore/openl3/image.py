"""OpenL3 image preprocessing, exactly as openl3 0.4.2's ``_preprocess_image_batch`` (NumPy only).

For one batch (H, W, 3) or (N, H, W, 3), all frames of one size, min(H, W) >= 224:

- exactly 224 x 224: no resizing; unsigned ints become ``2 * x / max - 1`` in float32
  ([-1, 1]); floats are only cast to float32;
- any other size: if min(H, W) > 256 (strictly), rescale by ``256 / min(H, W)`` with
  skimage's bilinear ``rescale`` (no anti-aliasing, output size rounded, sample positions
  ``(dst + 0.5) * in / out - 0.5``, on ``x / max`` in float64); then a centre crop of 224 x 224
  starting at ``(h // 2 - 112, w // 2 - 112)``, into a float64 array that openl3 only casts to
  float32, so the "[-1, 1]" step is skipped: resized frames reach the network in **[0, 1]**, and
  crop-only frames (short side 224..256) keep their raw values;
- finally, if ``max |batch| > 1`` the whole batch is divided by it (crop-only frames thus become
  ``x / max over the batch``).

``scaling="paper"`` is the one deliberate deviation on offer: every unsigned-int input is mapped
to [-1, 1] (``2 * x / max - 1`` after resize and crop), as the OpenL3 paper describes.
Only the central crop is interpolated (the separable bilinear weights are computed for the
224 output rows and columns that survive the crop).
"""

import numpy as np

from featurestore.errors import MediaError

SIZE = 224
SHORT_SIDE = 256
SCALINGS = ("openl3", "paper")


def _axis_weights(in_size, out_size, start):
    """Bilinear source indices and weights for output positions start..start+223 (float64)."""
    dst = np.arange(start, start + SIZE, dtype=np.float64)
    src = (dst + 0.5) * (in_size / out_size) - 0.5
    src = np.clip(src, 0.0, in_size - 1)
    low = np.floor(src).astype(np.int64)
    high = np.minimum(low + 1, in_size - 1)
    return low, high, src - low


def _unit_range(images):
    """skimage's img_as_float for unsigned ints (x * (1 / max)), float64."""
    if images.dtype.kind == "u":
        return images.astype(np.float64) * (1.0 / np.iinfo(images.dtype).max)
    return images.astype(np.float64)


def _resized_crop(images, scale):
    """Rescale (N, H, W, 3) images by ``scale`` (bilinear, on the unit range in float64) and
    cut the centre 224 x 224; only the source rows and columns the crop needs are touched."""
    height, width = images.shape[1:3]
    out_h, out_w = int(round(height * scale)), int(round(width * scale))
    row_low, row_high, row_weight = _axis_weights(height, out_h, out_h // 2 - SIZE // 2)
    col_low, col_high, col_weight = _axis_weights(width, out_w, out_w // 2 - SIZE // 2)
    # Gather the needed source columns once (uint8), then index into that narrow copy.
    columns, position = np.unique(np.concatenate([col_low, col_high]), return_inverse=True)
    col_low, col_high = position[:SIZE], position[SIZE:]
    narrow = images[:, :, columns]
    row_weight = row_weight[None, :, None, None]
    rows = (
        _unit_range(narrow[:, row_low]) * (1 - row_weight)
        + _unit_range(narrow[:, row_high]) * row_weight
    )
    col_weight = col_weight[None, None, :, None]
    return rows[:, :, col_low] * (1 - col_weight) + rows[:, :, col_high] * col_weight


def preprocess_images(images, *, scaling="openl3"):
    """Frames -> the network's input, exactly as openl3 0.4.2 prepares them.

    Parameters
    ----------
    images : ndarray, shape (H, W, 3) or (N, H, W, 3), uint8 (other unsigned ints and floats
        are accepted as openl3 accepts them); min(H, W) >= 224.
    scaling : "openl3" or "paper"
        "openl3" copies openl3 0.4.2 (only exact 224 x 224 inputs get [-1, 1]); "paper" maps
        every unsigned-int input to [-1, 1].

    Returns
    -------
    ndarray, shape (N, 224, 224, 3), float32 (channels last, like Keras)
        The max-abs normalisation is over the whole call's batch, as in openl3.
    """
    images = np.asarray(images)
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
    if images.size == 0:
        raise MediaError("OpenL3: got an empty image array")
    if images.ndim not in (3, 4) or images.shape[-1] != 3:
        raise MediaError(
            f"OpenL3: images must be (H, W, 3) or (N, H, W, 3) RGB, got shape {images.shape}"
        )
    if images.dtype.kind not in "uf":
        raise MediaError(f"OpenL3: images must be unsigned ints or floats, got {images.dtype}")
    if images.ndim == 3:
        images = images[np.newaxis]
    height, width = images.shape[1:3]
    if min(height, width) < SIZE:
        raise MediaError(f"OpenL3: images must be at least 224 x 224, got {height} x {width}")
    unsigned = images.dtype.kind == "u"
    if (height, width) == (SIZE, SIZE):
        batch = images
        if unsigned:
            batch = (
                2 * (images.astype(np.float32) * np.float32(1 / np.iinfo(images.dtype).max)) - 1
            )
    else:
        if min(height, width) > SHORT_SIDE:
            batch = _resized_crop(images, SHORT_SIDE / min(height, width))
        else:
            top, left = height // 2 - SIZE // 2, width // 2 - SIZE // 2
            batch = images[:, top : top + SIZE, left : left + SIZE].astype(np.float64)
        if scaling == "paper" and unsigned:
            if min(height, width) <= SHORT_SIDE:
                batch = batch * (1.0 / np.iinfo(images.dtype).max)
            batch = 2 * batch - 1
    batch = np.asarray(batch, dtype=np.float32)
    peak = np.max(np.abs(batch))
    if peak > 1:
        batch = batch / peak
    return np.ascontiguousarray(batch, dtype=np.float32)
