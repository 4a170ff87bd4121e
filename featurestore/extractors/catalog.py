"""Feature names -> extractors: the built-in catalog, HEAR modules and installed plugins.

:func:`builtin` turns a feature name of ``avscene extract --features`` into an
:class:`~featurestore.extractors.Extractor`. A name resolves, in this order:

1. :data:`CATALOG`, the built-in features: one :class:`Entry` each, naming its factory as
   ``"module:function"`` (imported only when the feature is built), its modality and the
   official file its weights are read from;
2. ``hear:<module>``: any HEAR-API audio module (:mod:`featurestore.extractors.hear`);
3. the entry points of group ``avscene.extractors`` of the installed distributions
   (:func:`plugins`): entry point name = feature name, object = a factory. The group is read
   only for a name that is neither of the above, or to list the names; a plugin is imported
   only when its feature is built. Its feature's params get the key ``plugin``: the
   distribution's name and version and the entry point (so a store refuses appends made with
   another version).

A factory is called as ``factory(name, weights=..., random_weights=..., bf16=..., hop=...,
center=..., sampling=..., image_scaling=..., logmel_params=...)`` (see :func:`builtin`;
``weights`` is this feature's weight file or None) and returns the extractor of ``name``, named
``name`` in the store. It takes the options it uses and ``**options`` for the rest, so that
options added later reach it harmlessly.

Weights are local files only: ``weights`` maps feature names to paths (the key ``None`` is a
folder of OpenL3 ``.h5`` files, ``--weights DIR``); a feature without an entry gets seeded
RANDOM weights in its official layout when ``random_weights`` is a seed, and otherwise looks in
its default place (OpenL3 only) or is refused with a one-line error.
"""

import dataclasses
from dataclasses import dataclass
from importlib import metadata

from featurestore.backbones import clip, images
from featurestore.errors import AvsceneError, StoreFormatError, UsageError
from featurestore.extractors.interface import AUDIO, VIDEO, Extractor
from featurestore.extractors.sampling import VideoSampling
from featurestore.openl3.weights import official_name

#: The entry point group of installed extractors.
GROUP = "avscene.extractors"
HEAR_PREFIX = "hear:"
BASELINE = ("openl3_audio", "openl3_video", "logmel")
#: The params key of an installed extractor's feature naming its distribution and entry point.
PLUGIN_KEY = "plugin"


@dataclass(frozen=True)
class Entry:
    """How one feature's extractor is made.

    Attributes
    ----------
    factory : str
        ``"module:function"`` of the factory (see the module docstring).
    modality : "audio", "video" or None
        None for an installed plugin: its factory decides.
    official_file : str or None
        The file name of its official weights (random weights are written under it).
    bare_weights : bool
        A bare ``--weights PATH`` (key None, the OpenL3 folder) applies to it.
    distribution : tuple of str, or None
        ``(name, version)`` of the distribution of an installed plugin; None for avscene's own.
    """

    factory: str
    modality: str | None = None
    official_file: str | None = None
    bare_weights: bool = False
    distribution: tuple[str, str] | None = None

    def load(self, name):
        """The factory, imported now; UsageError naming the plugin when it is broken."""
        try:
            factory = metadata.EntryPoint(name=name, value=self.factory, group=GROUP).load()
        except Exception as error:  # a plugin's import may raise anything
            if self.distribution is None:
                raise
            raise UsageError(
                f"{self._label(name)}: cannot import {self.factory} ({_one_line(error)})"
            ) from None
        if not callable(factory):
            raise UsageError(
                f"{self._label(name)}: {self.factory} is not callable (a value "
                f"of type {type(factory).__name__})"
            )
        return factory

    def build(self, name, **options):
        """``factory(name, **options)``, its result checked when the factory is a plugin's."""
        factory = self.load(name)
        if self.distribution is None:
            return factory(name, **options)
        try:
            extractor = factory(name, **options)
        except AvsceneError:
            raise
        except Exception as error:  # a plugin's bug becomes one line naming it
            raise UsageError(
                f"{self._label(name)}: {self.factory} failed ({_one_line(error)})"
            ) from None
        return self._with_origin(name, extractor)

    def _with_origin(self, name, extractor):
        """A plugin's extractor, checked, its params holding :data:`PLUGIN_KEY`."""
        if not isinstance(extractor, Extractor):
            raise UsageError(
                f"{self._label(name)}: {self.factory} returned a value of type "
                f"{type(extractor).__name__}, not a featurestore.extractors."
                f"Extractor"
            )
        if extractor.name != name:
            raise UsageError(
                f"{self._label(name)}: {self.factory} returned an extractor "
                f"named {extractor.name!r}; it must be named {name!r}"
            )
        if PLUGIN_KEY in extractor.params:
            raise UsageError(
                f"{self._label(name)}: its params hold the key {PLUGIN_KEY!r}, "
                f"which avscene fills in"
            )
        origin = {
            "distribution": self.distribution[0],
            "version": self.distribution[1],
            "entry_point": f"{name} = {self.factory}",
        }
        return dataclasses.replace(extractor, params={**extractor.params, PLUGIN_KEY: origin})

    def _label(self, name):
        return f"extractor {name!r} of {_origin(self.distribution)}"


def _origin(distribution):
    return f"distribution {distribution[0]} {distribution[1]}"


def _one_line(error):
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


BACKBONES = "featurestore.extractors.backbones"
OPENL3_LOGMEL = "featurestore.extractors.openl3_logmel"

#: The built-in features, by name.
CATALOG = {
    "openl3_audio": Entry(
        f"{OPENL3_LOGMEL}:openl3_audio_feature",
        AUDIO,
        official_name("audio", "mel256", "env"),
        bare_weights=True,
    ),
    "openl3_video": Entry(
        f"{OPENL3_LOGMEL}:openl3_video_feature",
        VIDEO,
        official_name("image", "mel256", "env"),
        bare_weights=True,
    ),
    "logmel": Entry(f"{OPENL3_LOGMEL}:logmel_feature", AUDIO),
    **{
        arch: Entry(f"{BACKBONES}:torchvision_backbone", VIDEO, sets[0].file)
        for arch, sets in images.WEIGHT_SETS.items()
    },
    **{
        model: Entry(f"{BACKBONES}:clip_backbone", VIDEO, "open_clip_pytorch_model.bin")
        for model in clip.MODELS
    },
    "panns_cnn14": Entry(f"{BACKBONES}:panns_cnn14", AUDIO, "Cnn14_mAP=0.431.pth"),
}
HEAR = Entry("featurestore.extractors.hear:hear_feature", AUDIO)


def store_name(name):
    """The store's name of feature ``name`` (``hear:pkg.mod`` -> ``hear-pkg.mod``)."""
    return "hear-" + name[len(HEAR_PREFIX) :] if name.startswith(HEAR_PREFIX) else name


def builtin_names():
    """The built-in feature names (``hear:<module>`` stands for any HEAR module)."""
    return tuple(CATALOG) + (HEAR_PREFIX + "<module>",)


def _is_hear(name):
    return name.startswith(HEAR_PREFIX) and len(name) > len(HEAR_PREFIX)


def _reserved(name):
    """A built-in name, or one a HEAR feature's name or store name may take."""
    return name in CATALOG or name.startswith((HEAR_PREFIX, "hear-"))


def plugins():
    """The installed extractors: feature name -> :class:`Entry`, none of them imported.

    Raises
    ------
    UsageError
        An entry point of :data:`GROUP` takes a built-in name, is not a valid feature name, or
        is declared by two distributions (one line naming the distribution).
    """
    from featurestore.store.layout import check_name as check_store_name

    found = {}
    for point in metadata.entry_points(group=GROUP):
        distribution = _distribution(point)
        origin = _origin(distribution)
        if _reserved(point.name):
            raise UsageError(
                f"{origin}: its {GROUP} entry point {point.name!r} takes a "
                f"built-in feature name; avscene refuses it (rename it)"
            )
        try:
            check_store_name(point.name)
        except StoreFormatError as error:
            raise UsageError(f"{origin}: {GROUP} entry point: {error}") from None
        if point.name in found and found[point.name].distribution != distribution:
            raise UsageError(
                f"{origin} and {_origin(found[point.name].distribution)} both "
                f"declare the extractor {point.name!r} ({GROUP})"
            )
        found[point.name] = Entry(point.value, distribution=distribution)
    return found


def _distribution(point):
    dist = point.dist
    return ("(unknown)", "") if dist is None else (dist.name, dist.version)


def names():
    """Every feature name: the built-in ones, then the installed plugins' (sorted)."""
    return builtin_names() + tuple(sorted(plugins()))


def entry(name):
    """The :class:`Entry` of feature ``name``; UsageError naming the choices if unknown."""
    if name in CATALOG:
        return CATALOG[name]
    if _is_hear(name):
        return HEAR
    installed = plugins()
    if name in installed:
        return installed[name]
    raise UsageError(
        f"unknown feature {name!r}; choose from "
        f"{', '.join(builtin_names() + tuple(sorted(installed)))}"
    )


def check_name(name):
    """Refuse an unknown feature name (UsageError naming the choices)."""
    entry(name)
    return name


def official_file(name):
    """The official weight file name of feature ``name`` (None: it has no single file)."""
    return entry(name).official_file


def builtin(
    name,
    *,
    weights=None,
    random_weights=None,
    bf16=False,
    hop=0.1,
    center=True,
    sampling=VideoSampling(),
    image_scaling="openl3",
    logmel_params=None,
):
    """The extractor of feature ``name``: built in, ``hear:<module>`` or installed.

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
    found = entry(name)
    weights = dict(weights or {})
    path = weights.get(name)
    if path is None and found.bare_weights:
        path = weights.get(None)
    return found.build(
        name,
        weights=path,
        random_weights=random_weights,
        bf16=bf16,
        hop=hop,
        center=center,
        sampling=sampling,
        image_scaling=image_scaling,
        logmel_params=logmel_params,
    )
