"""A synthetic corpus in the exact TAU Urban Audio-Visual Scenes 2021 layouts.

>>> from featurestore.synth import synth_corpus
>>> synth_corpus("corpus", clips_per_class=4, seconds=3.0)

Modules: :mod:`~featurestore.synth.corpus` (planning and writing the corpus),
:mod:`~featurestore.synth.audio` (scene audio recipes) and :mod:`~featurestore.synth.video`
(scene video recipes, H.264 encoding).
"""

from featurestore.synth.corpus import SynthResult, plan_corpus, synth_corpus

__all__ = ["SynthResult", "plan_corpus", "synth_corpus"]
