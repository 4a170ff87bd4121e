"""OpenL3's network architecture as plain data (no torch): layer sequence, shapes, pooling, FLOPs.

Both towers are the same VGG-like stack of 3x3 "same" convolutions (Keras defaults: stride 1,
bias, BatchNormalization epsilon 1e-3): an input BatchNorm, then blocks of (conv, BN, ReLU) x 2
with a 2x2 max-pool, widths 64, 128, 256, then conv 512 + BN + ReLU and the linear embedding
conv 512. The only difference: in the image tower, block 1's second BN comes *after* its ReLU.
The loader of openl3 then adds a max-pool (sizes below) and a Keras (H, W, C) flatten.

A layer spec is a tuple: ``("bn", channels)``, ``("conv", in_channels, out_channels)``,
``("relu",)`` or ``("pool",)``. The ``.h5`` files hold one weight group per "bn"/"conv" spec,
in this order.
"""

AUDIO = "audio"
IMAGE = "image"
KINDS = (AUDIO, IMAGE)
INPUT_REPRS = ("linear", "mel128", "mel256")
CONTENT_TYPES = ("env", "music")
EMBEDDING_SIZES = {AUDIO: (512, 6144), IMAGE: (512, 8192)}
BN_EPSILON = 1e-3

#: Network input (height, width) per input representation: (frequency bins or mel bands, frames).
INPUT_SHAPES = {
    "linear": (257, 197),
    "mel128": (128, 199),
    "mel256": (256, 199),
    IMAGE: (224, 224),
}

#: Pool sizes of the final max-pool, as in openl3.models (AUDIO_/IMAGE_POOLING_SIZES).
POOL_SIZES = {
    "linear": {6144: (8, 8), 512: (32, 24)},
    "mel128": {6144: (4, 8), 512: (16, 24)},
    "mel256": {6144: (8, 8), 512: (32, 24)},
    IMAGE: {8192: (7, 7), 512: (28, 28)},
}

#: Name of the last (embedding) layer in the official files; used in messages only.
EMBEDDING_LAYER = {AUDIO: "audio_embedding_layer", IMAGE: "vision_embedding_layer"}


def layer_specs(kind):
    """The layer sequence of one tower (see the module docstring for the spec tuples)."""
    in_channels = 1 if kind == AUDIO else 3
    specs = [("bn", in_channels)]
    previous = in_channels
    for block, width in enumerate((64, 128, 256)):
        specs += [("conv", previous, width), ("bn", width), ("relu",), ("conv", width, width)]
        if kind == IMAGE and block == 0:
            specs += [("relu",), ("bn", width)]
        else:
            specs += [("bn", width), ("relu",)]
        specs.append(("pool",))
        previous = width
    specs += [("conv", 256, 512), ("bn", 512), ("relu",), ("conv", 512, 512)]
    return tuple(specs)


def weight_shapes(kind):
    """Expected array shapes of each weight group, in file order.

    Returns
    -------
    list of (str, list of tuple)
        ``("conv", [(3, 3, in, out), (out,)])`` (Keras kernel layout kh, kw, in, out) or
        ``("bn", [(c,)] * 4)`` (gamma, beta, moving_mean, moving_variance).
    """
    shapes = []
    for spec in layer_specs(kind):
        if spec[0] == "conv":
            shapes.append(("conv", [(3, 3, spec[1], spec[2]), (spec[2],)]))
        elif spec[0] == "bn":
            shapes.append(("bn", [(spec[1],)] * 4))
    return shapes


def keras_layer_names(kind, *, first_suffix=1):
    """Keras layer names of the whole model (the ``layer_names`` attribute), in order.

    ``first_suffix=1`` gives standalone-Keras numbering (``conv2d_1`` ...), as in the official
    files; ``0`` gives TF2-Keras numbering (``conv2d``, ``conv2d_1``, ...); larger values give
    the continuing counters of a network built after another one in the same session.
    """
    counters = {}

    def name(base):
        number = first_suffix + counters.get(base, 0)
        counters[base] = counters.get(base, 0) + 1
        return base if number == 0 else f"{base}_{number}"

    names = [name("input")]
    specs = layer_specs(kind)
    for position, spec in enumerate(specs):
        if position == len(specs) - 1:
            names.append(EMBEDDING_LAYER[kind])
        else:
            base = {
                "bn": "batch_normalization",
                "conv": "conv2d",
                "relu": "activation",
                "pool": "max_pooling2d",
            }[spec[0]]
            names.append(name(base))
    return names


def output_shape(kind, input_repr, embedding_size):
    """(height, width, channels) after the final max-pool; their product is the embedding size."""
    height, width = INPUT_SHAPES[input_repr if kind == AUDIO else IMAGE]
    for _ in range(3):  # three 2x2 max-pools, floor
        height, width = height // 2, width // 2
    pool_h, pool_w = POOL_SIZES[input_repr if kind == AUDIO else IMAGE][embedding_size]
    return -(-height // pool_h), -(-width // pool_w), 512


def conv_flops(kind, input_repr=None):
    """Multiply-adds x 2 of all convolutions for one input window or image (analytic count)."""
    height, width = INPUT_SHAPES[input_repr if kind == AUDIO else IMAGE]
    flops = 0
    for spec in layer_specs(kind):
        if spec[0] == "conv":
            flops += 2 * 9 * spec[1] * spec[2] * height * width
        elif spec[0] == "pool":
            height, width = height // 2, width // 2
    return flops
