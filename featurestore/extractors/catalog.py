"""The built-in extractors by feature name, and where each one's weights come from.

:func:`builtin` turns a feature name of ``avscene extract --features`` into an
:class:`~featurestore.extractors.Extractor`: ``openl3_audio``, ``openl3_video``, ``logmel``,
``hear:<module>`` and the image/audio backbones of :mod:`featurestore.extractors.backbones`.
Weights are local files only: ``weights`` maps feature names to paths (the key ``None`` is a
folder of OpenL3 ``.h5`` files, ``--weights DIR``); a feature without an entry gets seeded
RANDOM weights in its official layout when ``random_weights`` is a seed, and otherwise looks in
its default place (OpenL3 only) or is refused with a one-line error.
"""

from featurestore.errors import UsageError
from featurestore.extractors import openl3_logmel
from featurestore.extractors.sampling import VideoSampling

BASELINE = ("openl3_audio", "openl3_video", "logmel")
HEAR_PREFIX = "hear:"


def store_name(name):
    """The store's name of feature ``name`` (``hear:pkg.mod`` -> ``hear-pkg.mod``)."""
    return "hear-" + name[len(HEAR_PREFIX):] if name.startswith(HEAR_PREFIX) else name


def names():
    """Every built-in feature name (``hear:<module>`` stands for any HEAR module)."""
    from featurestore.extractors import backbones

    return BASELINE + tuple(backbones.IMAGE_BACKBONES) + tuple(backbones.AUDIO_BACKBONES) + (
        HEAR_PREFIX + "<module>",)


def check_name(name):
    """Refuse an unknown feature name (UsageError naming the choices)."""
    from featurestore.extractors import backbones

    known = BASELINE + tuple(backbones.IMAGE_BACKBONES) + tuple(backbones.AUDIO_BACKBONES)
    if name in known or (name.startswith(HEAR_PREFIX) and len(name) > len(HEAR_PREFIX)):
        return name
    raise UsageError(f"unknown feature {name!r}; choose from {', '.join(names())}")


def builtin(name, *, weights=None, random_weights=None, bf16=False, hop=0.1, center=True,
            sampling=VideoSampling(), image_scaling="openl3", logmel_params=None):
    """The extractor of feature ``name`` (see the module docstring).

    Parameters
    ----------
    name : str
    weights : dict, optional
        Feature name -> weight file; key None: the OpenL3 folder (or file).
    random_weights : int, optional
        Seed of RANDOM weights for features without an entry in ``weights``.
    bf16 : bool
        bfloat16 autocast on the device (recorded in the params).
    hop, center : float, bool
        Windowed audio embeddings (OpenL3 audio, PANNs CNN14): hop and centring.
    sampling : VideoSampling
        The video frames (every video feature).
    image_scaling : str
        OpenL3 video's input range.
    logmel_params : dict, optional
        :func:`featurestore.frontends.logmel.logmel_params`.

    Returns
    -------
    Extractor
    """
    check_name(name)
    weights = dict(weights or {})
    given = weights.get(name)
    if name in ("openl3_audio", "openl3_video"):
        path = given if given is not None else weights.get(None)
        if path is None and random_weights is not None:
            from featurestore import openl3

            path = openl3.random_weights_folder(random_weights)
        if name == "openl3_audio":
            return openl3_logmel.openl3_audio(weights=path, hop=hop, center=center, bf16=bf16)
        return openl3_logmel.openl3_video(weights=path, sampling=sampling,
                                     image_scaling=image_scaling, bf16=bf16)
    if name == "logmel":
        return openl3_logmel.logmel(logmel_params)
    if name.startswith(HEAR_PREFIX):
        from featurestore.extractors import hear

        return hear.hear_extractor(name[len(HEAR_PREFIX):], weights=given, bf16=bf16)
    from featurestore.extractors import backbones

    return backbones.backbone(name, weights=given, random_weights=random_weights, bf16=bf16,
                              hop=hop, center=center, sampling=sampling)
